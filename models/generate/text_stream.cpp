#include "models/generate/text_stream.h"

#include <algorithm>
#include <utility>

namespace ph {

namespace {

const char kReplacement[] = "\xEF\xBF\xBD";  // U+FFFD in UTF-8

// The expected byte length of the UTF-8 sequence a lead byte starts; 0 if not a lead.
int utf8_length(unsigned char lead) {
  if (lead < 0x80) return 1;
  if ((lead & 0xE0) == 0xC0) return 2;
  if ((lead & 0xF0) == 0xE0) return 3;
  if ((lead & 0xF8) == 0xF0) return 4;
  return 0;
}

}  // namespace

size_t stable_utf8_prefix(const std::string& text) {
  size_t end = text.size();
  // An incomplete last character: up to 3 continuation bytes after a lead byte that
  // promises more.
  size_t start = end;
  while (start > 0 && end - start < 3 &&
         (static_cast<unsigned char>(text[start - 1]) & 0xC0) == 0x80)
    --start;
  if (start > 0) {
    const int want = utf8_length(static_cast<unsigned char>(text[start - 1]));
    if (want > 1 && end - (start - 1) < size_t(want)) end = start - 1;
  }
  while (end >= 3 && text.compare(end - 3, 3, kReplacement) == 0) end -= 3;
  return end;
}

TextStream::TextStream(const Tokenizer& tokenizer, std::vector<int32_t> context)
    : tokenizer_(tokenizer), ids_(std::move(context)), n_context_(ids_.size()) {
  context_text_ = tokenizer_.decode(ids_);
}

std::string TextStream::continuation() const {
  const std::string all = tokenizer_.decode(ids_);
  if (all.compare(0, context_text_.size(), context_text_) == 0)
    return all.substr(context_text_.size());
  // The generated text merged into the context's (a tokenizer that normalises across
  // the boundary): the generated ids alone are the best we have.
  return tokenizer_.decode(std::vector<int32_t>(ids_.begin() + n_context_, ids_.end()));
}

std::string TextStream::push(int32_t token) {
  ids_.push_back(token);
  std::string text = continuation();
  text.resize(stable_utf8_prefix(text));
  // Emit only what extends the text already out; if the decoder rewrote earlier text
  // (it should not), wait: finish() prints the end as it finally reads.
  if (text.size() <= emitted_.size() || text.compare(0, emitted_.size(), emitted_) != 0) return {};
  std::string fresh = text.substr(emitted_.size());
  emitted_ = std::move(text);
  return fresh;
}

std::string TextStream::finish() {
  const std::string text = continuation();
  const size_t common =
      std::mismatch(emitted_.begin(), emitted_.end(), text.begin(), text.end()).first -
      emitted_.begin();
  std::string rest = text.substr(common);
  emitted_ = text;
  return rest;
}

}  // namespace ph
