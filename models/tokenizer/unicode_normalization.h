// Unicode normalisation forms (NFC, NFD, NFKC, NFKD) through utf8proc, for the
// tokenizer.json normalizers of those names (Qwen2 and Qwen3 use NFC).
#pragma once

#include <string>
#include <string_view>

namespace ph::tok {

enum class UnicodeForm { kNFC, kNFD, kNFKC, kNFKD };

// `text` in `form`. Bytes that are not valid UTF-8 are kept as they are, and each valid
// stretch between them is normalised on its own, so that byte-level tokenizers still see
// every byte of any input (Hugging Face's normalizers never meet such bytes: its texts
// are valid strings).
std::string normalize_unicode(std::string_view text, UnicodeForm form);

}  // namespace ph::tok
