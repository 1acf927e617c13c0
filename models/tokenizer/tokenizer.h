// Text <-> token ids for a frozen model. One interface, four file formats:
// SentencePiece tokenizer.model, llama2.c tokenizer.bin, and Hugging Face tokenizer.json
// (byte-level BPE as GPT-2, SmolLM2, Llama 3 and Qwen use it; SentencePiece-style BPE
// with byte fallback as Llama uses it).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace ph {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // Token ids of `text`, without BOS/EOS (callers add them: see bos_id()). The literal
  // text of a special token ("<|im_start|>", and "<s>" in a tokenizer.json) becomes that
  // token.
  virtual std::vector<int32_t> encode(std::string_view text) const = 0;
  // The text of `ids`; special tokens (BOS, EOS, "<|im_start|>", ...) produce no text.
  // Throws ph::Error for an id outside the vocabulary.
  //
  // decode(encode(t)) == t holds when t contains no special token's literal text (encode
  // turns that text into the token, which decodes to nothing) and the tokenizer's
  // normalisation leaves t as it is. That is every byte string for llama2.c's
  // tokenizer.bin and for tokenizer.json files without a normalizer (GPT-2, SmolLM2,
  // Llama 3); text already in NFC for an NFC normalizer (Qwen2, Qwen3: a decomposed
  // "e" + U+0301 comes back as the composed "é"); and for a SentencePiece model, text its
  // normalizer keeps (most collapse runs of spaces).
  virtual std::string decode(const std::vector<int32_t>& ids) const = 0;
  // The vocabulary's spelling of token `id`, as Hugging Face's Encoding.tokens shows it
  // ("Ġworld" in byte-level BPE, "▁world" in SentencePiece, "<|im_start|>").
  // The default decodes the token alone. Throws ph::Error for an id outside the
  // vocabulary.
  virtual std::string piece(int32_t id) const { return decode({id}); }
  virtual int vocab_size() const = 0;
  virtual int bos_id() const = 0;  // -1 when the tokenizer has none
  virtual int eos_id() const = 0;  // -1 when the tokenizer has none
};

// Loads a tokenizer from a file (tokenizer.model, tokenizer.bin, tokenizer.json) or
// from a model folder (looks for tokenizer.json, then tokenizer.model, then tokenizer.bin).
// Throws ph::Error naming the file and the problem.
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path);

}  // namespace ph
