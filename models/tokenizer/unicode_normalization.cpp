#include "models/tokenizer/unicode_normalization.h"

#include <cstdlib>
#include <memory>

#include <utf8proc.h>

#include "models/common/error.h"
#include "models/tokenizer/text_util.h"

namespace ph::tok {
namespace {

// The options utf8proc's own utf8proc_NFC() & co. use (those need NUL-terminated text).
utf8proc_option_t options_of(UnicodeForm form) {
  switch (form) {
    case UnicodeForm::kNFC:
      return static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE);
    case UnicodeForm::kNFD:
      return static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_DECOMPOSE);
    case UnicodeForm::kNFKC:
      return static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT);
    case UnicodeForm::kNFKD:
      return static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT);
  }
  return UTF8PROC_STABLE;
}

// Appends the normalised form of `valid`, a stretch of valid UTF-8.
void append_normalized(std::string_view valid, utf8proc_option_t options, std::string& out) {
  utf8proc_uint8_t* result = nullptr;
  const utf8proc_ssize_t length =
      utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(valid.data()),
                   static_cast<utf8proc_ssize_t>(valid.size()), &result, options);
  const std::unique_ptr<utf8proc_uint8_t, decltype(&std::free)> owned(result, &std::free);
  if (length < 0) {
    throw Error(std::string("Unicode normalisation failed: ") + utf8proc_errmsg(length));
  }
  out.append(reinterpret_cast<const char*>(result), static_cast<size_t>(length));
}

bool is_ascii(std::string_view text) {
  for (const char c : text) {
    if (static_cast<unsigned char>(c) >= 0x80) return false;
  }
  return true;
}

}  // namespace

std::string normalize_unicode(std::string_view text, UnicodeForm form) {
  // ASCII is the same in every form (and is most of what a tokenizer sees).
  if (is_ascii(text)) return std::string(text);
  const utf8proc_option_t options = options_of(form);
  std::string out;
  out.reserve(text.size());
  size_t valid_begin = 0;
  for (size_t pos = 0; pos < text.size();) {
    const size_t length = utf8_char_length(text, pos);
    if (utf8_decode(text, pos, length) >= 0) {
      pos += length;
      continue;
    }
    if (pos > valid_begin)
      append_normalized(text.substr(valid_begin, pos - valid_begin), options, out);
    out += text[pos];  // the invalid byte, unchanged
    valid_begin = pos += 1;
  }
  if (text.size() > valid_begin) append_normalized(text.substr(valid_begin), options, out);
  return out;
}

}  // namespace ph::tok
