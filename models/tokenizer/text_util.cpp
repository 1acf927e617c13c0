#include "models/tokenizer/text_util.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include "models/common/error.h"

namespace ph::tok {

size_t utf8_char_length(std::string_view text, size_t pos) {
  const auto lead = static_cast<unsigned char>(text[pos]);
  size_t length = 1;
  if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4;
  } else if (lead >= 0xE0) {
    length = lead <= 0xEF ? 3 : 1;
  } else if (lead >= 0xC2) {
    length = 2;
  }
  if (pos + length > text.size()) return 1;
  for (size_t i = 1; i < length; ++i) {
    if ((static_cast<unsigned char>(text[pos + i]) & 0xC0) != 0x80) return 1;
  }
  return length;
}

int32_t utf8_decode(std::string_view text, size_t pos, size_t length) {
  const auto byte = [&](size_t i) { return static_cast<unsigned char>(text[pos + i]); };
  switch (length) {
    case 1:
      return byte(0) < 0x80 ? byte(0) : -1;
    case 2:
      return ((byte(0) & 0x1F) << 6) | (byte(1) & 0x3F);
    case 3: {
      const int32_t cp = ((byte(0) & 0x0F) << 12) | ((byte(1) & 0x3F) << 6) | (byte(2) & 0x3F);
      // Overlong encodings and surrogates are not valid UTF-8.
      return (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF)) ? -1 : cp;
    }
    case 4: {
      const int32_t cp = ((byte(0) & 0x07) << 18) | ((byte(1) & 0x3F) << 12) |
                         ((byte(2) & 0x3F) << 6) | (byte(3) & 0x3F);
      return (cp < 0x10000 || cp > 0x10FFFF) ? -1 : cp;
    }
    default:
      return -1;
  }
}

bool is_unicode_whitespace(int32_t c) {
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
         c == 0x3000;
}

std::string byte_piece_name(uint8_t byte) {
  char name[8];
  std::snprintf(name, sizeof name, "<0x%02X>", byte);
  return name;
}

std::optional<uint8_t> parse_byte_piece(std::string_view piece) {
  if (piece.size() != 6 || piece.substr(0, 3) != "<0x" || piece[5] != '>') return std::nullopt;
  int value = 0;
  for (size_t i = 3; i < 5; ++i) {
    const char c = piece[i];
    int digit;
    if (c >= '0' && c <= '9') {
      digit = c - '0';
    } else if (c >= 'A' && c <= 'F') {
      digit = c - 'A' + 10;
    } else if (c >= 'a' && c <= 'f') {
      digit = c - 'a' + 10;
    } else {
      return std::nullopt;
    }
    value = value * 16 + digit;
  }
  return static_cast<uint8_t>(value);
}

Error unknown_id_error(const std::string& path, int64_t id, int vocab_size) {
  return Error(path + ": cannot decode token id " + std::to_string(id) +
               ", which is not in the vocabulary of " + std::to_string(vocab_size));
}

void check_token_id(const std::string& path, int64_t id, int vocab_size) {
  if (id < 0 || id >= vocab_size) throw unknown_id_error(path, id, vocab_size);
}

std::string read_file(const std::string& path, const std::string& what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    throw Error(path + ": cannot open " + what + " (" + std::strerror(errno) + ")");
  }
  std::ostringstream content;
  content << in.rdbuf();
  if (in.bad()) throw Error(path + ": error while reading " + what);
  return content.str();
}

}  // namespace ph::tok
