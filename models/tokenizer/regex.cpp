#define PCRE2_CODE_UNIT_WIDTH 8
#include "models/tokenizer/regex.h"

#include <pcre2.h>

#include "models/common/error.h"
#include "models/tokenizer/text_util.h"

namespace ph::tok {

struct Regex::Code {
  pcre2_code* code = nullptr;
  ~Code() { pcre2_code_free(code); }
};

namespace {

// Oniguruma (Hugging Face's engine) allows a class inside a class, "[^(\s|[.,!?])]" in
// Bloom's pattern, meaning their union; PCRE2 reads the inner "[" as a literal. A nested
// class that is not negated is the same class without its own brackets, so they are
// dropped. (A negated nested class is refused: it has no such spelling.)
std::string flatten_nested_classes(const std::string& pattern, const std::string& where) {
  std::string out;
  int depth = 0;  // 0: outside any class
  for (size_t i = 0; i < pattern.size(); ++i) {
    const char c = pattern[i];
    if (c == '\\' && i + 1 < pattern.size()) {
      out += pattern.substr(i, 2);
      ++i;
      continue;
    }
    const bool posix = pattern.compare(i, 2, "[:") == 0;
    if (c == '[' && !(depth > 0 && posix)) {
      const bool negated = i + 1 < pattern.size() && pattern[i + 1] == '^';
      if (depth > 0 && negated) {
        throw Error(where + ": unsupported regular expression '" + pattern +
                    "': a negated class inside a class");
      }
      if (depth == 0) out += c;
      ++depth;
      // A "]" right after "[" or "[^" is a literal member.
      const size_t first = i + 1 + (negated ? 1 : 0);
      if (depth == 1 && negated) out += '^';
      i = first - 1;
      if (first < pattern.size() && pattern[first] == ']') {
        out += "\\]";
        i = first;
      }
      continue;
    }
    if (c == '[' && posix) {  // [:alpha:] inside a class: copy through its ":]"
      const size_t end = pattern.find(":]", i + 2);
      if (end != std::string::npos) {
        out += pattern.substr(i, end + 2 - i);
        i = end + 1;
        continue;
      }
    }
    if (c == ']' && depth > 0) {
      --depth;
      if (depth == 0) out += c;
      continue;
    }
    out += c;
  }
  return out;
}

}  // namespace

Regex::Regex(const std::string& raw_pattern, const std::string& where) : code_(new Code) {
  const std::string pattern = flatten_nested_classes(raw_pattern, where);
  int error_code = 0;
  PCRE2_SIZE error_offset = 0;
  // MULTILINE: the patterns are written for Oniguruma's Ruby syntax (Hugging Face's
  // engine), where ^ and $ match at every line start and end.
  // MATCH_INVALID_UTF: texts are not trusted to be valid UTF-8, and a match must not fail
  // (or crash) on them.
  const uint32_t options = PCRE2_UTF | PCRE2_UCP | PCRE2_MULTILINE | PCRE2_MATCH_INVALID_UTF;
  code_->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(), options,
                              &error_code, &error_offset, nullptr);
  if (!code_->code) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(error_code, message, sizeof message);
    throw Error(where + ": invalid regular expression '" + raw_pattern + "' at offset " +
                std::to_string(error_offset) + ": " + reinterpret_cast<const char*>(message));
  }
  // The JIT is several times faster; without it (unsupported CPU) matching still works.
  pcre2_jit_compile(code_->code, PCRE2_JIT_COMPLETE);
}

Regex::~Regex() = default;

std::vector<std::pair<size_t, size_t>> Regex::find_all(std::string_view text) const {
  std::vector<std::pair<size_t, size_t>> matches;
  std::unique_ptr<pcre2_match_data, decltype(&pcre2_match_data_free)> data(
      pcre2_match_data_create_from_pattern(code_->code, nullptr), &pcre2_match_data_free);
  const auto subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t offset = 0;
  while (offset < text.size()) {
    const int rc = pcre2_match(code_->code, subject, text.size(), offset, 0, data.get(), nullptr);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      PCRE2_UCHAR message[256];
      pcre2_get_error_message(rc, message, sizeof message);
      throw Error(std::string("regular expression match failed: ") +
                  reinterpret_cast<const char*>(message));
    }
    const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(data.get());
    const size_t begin = ovector[0], end = ovector[1];
    if (end > begin) {
      matches.emplace_back(begin, end);
      offset = end;
    } else {
      // An empty match splits nothing: step over one character and search on.
      if (begin >= text.size()) break;
      offset = begin + utf8_char_length(text, begin);
    }
  }
  return matches;
}

}  // namespace ph::tok
