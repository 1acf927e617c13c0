#include "models/tokenizer/byte_level.h"

#include <array>
#include <cstdint>

#include "models/tokenizer/text_util.h"

namespace ph::tok {
namespace {

struct ByteLevelTables {
  std::array<std::string, 256> byte_to_char;
  std::array<int16_t, 0x144> char_to_byte;  // code points are < 0x100 + 68

  ByteLevelTables() {
    char_to_byte.fill(-1);
    // Printable Latin-1 bytes stand for themselves; the other 68 bytes take the code
    // points from 256 upwards, in byte order (as GPT-2's encoder.py does).
    int next_extra = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
      const int cp = printable ? b : next_extra++;
      char_to_byte[cp] = static_cast<int16_t>(b);
      std::string utf8;
      if (cp < 0x80) {
        utf8 += static_cast<char>(cp);
      } else {
        utf8 += static_cast<char>(0xC0 | (cp >> 6));
        utf8 += static_cast<char>(0x80 | (cp & 0x3F));
      }
      byte_to_char[b] = utf8;
    }
  }
};

const ByteLevelTables& tables() {
  static const ByteLevelTables instance;
  return instance;
}

}  // namespace

std::string byte_level_encode(std::string_view bytes) {
  const auto& t = tables();
  std::string out;
  out.reserve(bytes.size() * 2);
  for (const char c : bytes) out += t.byte_to_char[static_cast<unsigned char>(c)];
  return out;
}

std::optional<std::string> byte_level_decode(std::string_view token) {
  const auto& t = tables();
  std::string out;
  out.reserve(token.size());
  for (size_t pos = 0; pos < token.size();) {
    const size_t length = utf8_char_length(token, pos);
    const int32_t cp = utf8_decode(token, pos, length);
    if (cp < 0 || cp >= static_cast<int32_t>(t.char_to_byte.size()) || t.char_to_byte[cp] < 0) {
      return std::nullopt;
    }
    out += static_cast<char>(t.char_to_byte[cp]);
    pos += length;
  }
  return out;
}

}  // namespace ph::tok
