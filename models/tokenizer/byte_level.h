// GPT-2's reversible byte <-> printable-character mapping ("bytes_to_unicode"): byte-level
// BPE vocabularies spell every byte as a visible character (space is "Ġ", newline "Ċ").
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace ph::tok {

// Each byte of `bytes` replaced by its character (UTF-8 encoded).
std::string byte_level_encode(std::string_view bytes);

// The bytes a token's characters stand for; nullopt if some character is not one of
// the 256 byte characters (e.g. an added token's text).
std::optional<std::string> byte_level_decode(std::string_view token);

}  // namespace ph::tok
