// SentencePiece's compiled normalisation rules (a model's precompiled_charsmap, which
// T5's, ALBERT's and XLM-R's tokenizer.json carry in a "Precompiled" normalizer): a
// double-array trie of source strings whose values point into a blob of NUL-terminated
// replacements. normalize() applies them as Hugging Face's Precompiled normalizer does.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ph::tok {

class PrecompiledCharsMap {
 public:
  // `charsmap` is the decoded bytes: a little-endian u32 trie size in bytes, the trie's
  // u32 units, then the replacements. ph::Error naming `where` when it is malformed.
  PrecompiledCharsMap(std::string_view charsmap, const std::string& where);

  // Each grapheme cluster (of fewer than 6 bytes) whose start the trie holds becomes that
  // rule's replacement as a whole; the characters of any other grapheme are replaced one
  // by one. (This is Hugging Face's rule, quirks included: it is what makes its ids those
  // of SentencePiece for the models it was checked on.)
  std::string normalize(std::string_view text) const;

 private:
  // The replacement of the shortest prefix of `chunk` that is a source of the trie.
  std::optional<std::string_view> transform(std::string_view chunk) const;
  uint32_t unit(size_t index) const;

  std::string where_;
  std::vector<uint32_t> trie_;
  std::string replacements_;
};

// The bytes of standard (RFC 4648, padded) base64 text; ph::Error naming `where` for any
// other text.
std::string decode_base64(std::string_view text, const std::string& where);

}  // namespace ph::tok
