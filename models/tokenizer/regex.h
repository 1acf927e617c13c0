// A compiled PCRE2 pattern (UTF + Unicode properties), the regex engine behind the
// Hugging Face pre-tokenizers and normalizers (GPT-2's `\p{L}`, lookaheads, ...).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ph::tok {

class Regex {
 public:
  // `where` names the pattern's origin (file and field) for the error of a bad pattern.
  Regex(const std::string& pattern, const std::string& where);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // [begin, end) byte ranges of the successive non-overlapping, non-empty matches.
  // Invalid UTF-8 in `text` is never matched (it is left between matches).
  std::vector<std::pair<size_t, size_t>> find_all(std::string_view text) const;

 private:
  struct Code;
  std::unique_ptr<Code> code_;
};

}  // namespace ph::tok
