#include "models/tokenizer/precompiled_charsmap.h"

#include <cstring>

#include <utf8proc.h>

#include "models/common/error.h"
#include "models/tokenizer/text_util.h"

namespace ph::tok {
namespace {

// The fields of a double-array unit (darts-clone's layout, as SentencePiece writes it).
bool has_leaf(uint32_t unit) {
  return (unit >> 8) & 1;
}
uint32_t value_of(uint32_t unit) {
  return unit & ((1u << 31) - 1);
}
uint32_t label_of(uint32_t unit) {
  return unit & ((1u << 31) | 0xFF);
}
uint32_t offset_of(uint32_t unit) {
  return (unit >> 10) << ((unit & (1u << 9)) >> 6);
}

bool valid_utf8(std::string_view text) {
  for (size_t pos = 0; pos < text.size();) {
    const size_t length = utf8_char_length(text, pos);
    if (utf8_decode(text, pos, length) < 0) return false;
    pos += length;
  }
  return true;
}

// [begin, end) byte ranges of the extended grapheme clusters of `text`. A byte that is
// not UTF-8 is a cluster of its own (Hugging Face's texts never hold one).
std::vector<std::pair<size_t, size_t>> graphemes(std::string_view text) {
  std::vector<std::pair<size_t, size_t>> out;
  utf8proc_int32_t state = 0;
  int32_t previous = -1;
  for (size_t pos = 0; pos < text.size();) {
    const size_t length = utf8_char_length(text, pos);
    const int32_t c = utf8_decode(text, pos, length);
    const bool starts =
        previous < 0 || c < 0 || utf8proc_grapheme_break_stateful(previous, c, &state);
    if (starts) {
      out.emplace_back(pos, pos + length);
    } else {
      out.back().second = pos + length;
    }
    previous = c;
    pos += length;
  }
  return out;
}

}  // namespace

PrecompiledCharsMap::PrecompiledCharsMap(std::string_view charsmap, const std::string& where)
    : where_(where) {
  uint32_t trie_bytes = 0;
  if (charsmap.size() < 4) throw Error(where + ": precompiled_charsmap is shorter than its header");
  std::memcpy(&trie_bytes, charsmap.data(), 4);  // little-endian, as every supported CPU
  if (trie_bytes % 4 != 0 || trie_bytes > charsmap.size() - 4) {
    throw Error(where + ": precompiled_charsmap's trie size " + std::to_string(trie_bytes) +
                " does not fit its " + std::to_string(charsmap.size()) + " bytes");
  }
  trie_.resize(trie_bytes / 4);
  if (!trie_.empty()) std::memcpy(trie_.data(), charsmap.data() + 4, trie_bytes);
  replacements_ = std::string(charsmap.substr(4 + trie_bytes));
  if (!valid_utf8(replacements_)) {
    throw Error(where + ": precompiled_charsmap's replacements are not UTF-8");
  }
}

uint32_t PrecompiledCharsMap::unit(size_t index) const {
  if (index >= trie_.size()) {
    throw Error(where_ + ": precompiled_charsmap's trie points outside itself (corrupt file?)");
  }
  return trie_[index];
}

std::optional<std::string_view> PrecompiledCharsMap::transform(std::string_view chunk) const {
  if (trie_.empty()) return std::nullopt;
  size_t node = offset_of(unit(0));
  for (const char byte : chunk) {
    const auto c = static_cast<unsigned char>(byte);
    if (c == 0) break;
    node ^= c;
    const uint32_t u = unit(node);
    if (label_of(u) != c) return std::nullopt;
    node ^= offset_of(u);
    if (has_leaf(u)) {
      const size_t begin = value_of(unit(node));
      if (begin > replacements_.size()) {
        throw Error(where_ + ": a precompiled_charsmap rule points past the replacements");
      }
      const size_t end = replacements_.find('\0', begin);
      return std::string_view(replacements_)
          .substr(begin, (end == std::string::npos ? replacements_.size() : end) - begin);
    }
  }
  return std::nullopt;
}

std::string PrecompiledCharsMap::normalize(std::string_view text) const {
  std::string out;
  out.reserve(text.size());
  for (const auto& [begin, end] : graphemes(text)) {
    const std::string_view grapheme = text.substr(begin, end - begin);
    if (grapheme.size() < 6) {
      if (const auto replacement = transform(grapheme)) {
        out += *replacement;
        continue;
      }
    }
    for (size_t pos = 0; pos < grapheme.size();) {
      const size_t length = utf8_char_length(grapheme, pos);
      const std::string_view c = grapheme.substr(pos, length);
      const auto replacement = transform(c);
      out += replacement ? *replacement : c;
      pos += length;
    }
  }
  return out;
}

std::string decode_base64(std::string_view text, const std::string& where) {
  const auto sextet = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  if (text.size() % 4 != 0)
    throw Error(where + ": base64 text whose length is not a multiple of 4");
  std::string out;
  out.reserve(text.size() / 4 * 3);
  for (size_t i = 0; i < text.size(); i += 4) {
    const bool last = i + 4 == text.size();
    const int padding =
        last ? (text[i + 3] == '=') + (text[i + 2] == '=' && text[i + 3] == '=') : 0;
    uint32_t bits = 0;
    for (int k = 0; k < 4; ++k) {
      const int v = k >= 4 - padding ? 0 : sextet(text[i + k]);
      if (v < 0) throw Error(where + ": not base64 text (at byte " + std::to_string(i + k) + ")");
      bits = (bits << 6) | static_cast<uint32_t>(v);
    }
    out += static_cast<char>(bits >> 16);
    if (padding < 2) out += static_cast<char>((bits >> 8) & 0xFF);
    if (padding < 1) out += static_cast<char>(bits & 0xFF);
  }
  return out;
}

}  // namespace ph::tok
