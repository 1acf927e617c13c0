// Small text and file helpers shared by the tokenizer formats.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "models/common/error.h"

namespace ph::tok {

// Byte length of the UTF-8 character starting at text[pos]. Invalid or truncated
// sequences count as one byte, so every byte string splits into "characters" and
// byte-level tokenizers never lose a byte.
size_t utf8_char_length(std::string_view text, size_t pos);

// The code point of the valid UTF-8 character at text[pos] (length from
// utf8_char_length), or -1 when the bytes there are not a valid character.
int32_t utf8_decode(std::string_view text, size_t pos, size_t length);

// Unicode White_Space (what Rust's char::is_whitespace, and so Hugging Face's Strip,
// treats as whitespace).
bool is_unicode_whitespace(int32_t code_point);

// The SentencePiece name of a raw byte, "<0x0A>", and back (nullopt when `piece` is not
// exactly such a name).
std::string byte_piece_name(uint8_t byte);
std::optional<uint8_t> parse_byte_piece(std::string_view piece);

// Throws unknown_id_error() unless 0 <= id < vocab_size.
void check_token_id(const std::string& path, int64_t id, int vocab_size);
// The error for a token id that is not in the vocabulary of `path`.
Error unknown_id_error(const std::string& path, int64_t id, int vocab_size);

// The whole file, or ph::Error naming `path` (and `what` it was meant to be).
std::string read_file(const std::string& path, const std::string& what);

}  // namespace ph::tok
