// Turning generated token ids into text as they arrive, for streaming output.
//
// Decoding token by token in isolation is wrong twice over: SentencePiece drops the
// leading space of a sequence's first piece (so " computer" would print as
// "computer"), and a character split over byte-fallback tokens decodes to U+FFFD until
// its last byte arrives. So the stream decodes the prompt and everything generated so
// far together, and emits only text that can no longer change.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "models/tokenizer/tokenizer.h"

namespace ph {

class TextStream {
 public:
  // `context`: the ids the generated ones continue (the prompt, BOS or not).
  TextStream(const Tokenizer& tokenizer, std::vector<int32_t> context);
  // The new text `token` completes; empty while it ends inside a character.
  std::string push(int32_t token);
  // Whatever is still held back. The concatenation of every push() and finish() is the
  // continuation: decode(context + generated) minus decode(context).
  std::string finish();

 private:
  // The text of the generated ids as it reads after the context.
  std::string continuation() const;

  const Tokenizer& tokenizer_;
  std::vector<int32_t> ids_;  // context, then generated
  size_t n_context_;
  std::string context_text_;
  std::string emitted_;
};

// The length of `text` without a trailing incomplete UTF-8 sequence and without trailing
// U+FFFD replacement characters (which a decoder writes for bytes still incomplete).
size_t stable_utf8_prefix(const std::string& text);

}  // namespace ph
