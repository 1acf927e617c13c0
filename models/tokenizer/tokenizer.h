// Text <-> token ids for a frozen model. One interface, four file formats:
// SentencePiece tokenizer.model, llama2.c tokenizer.bin, and Hugging Face tokenizer.json
// (byte-level BPE as GPT-2 / SmolLM2 use it; SentencePiece-style BPE with byte fallback
// as Llama uses it).
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

  // Token ids of `text`, without BOS/EOS (callers add them: see bos_id()).
  virtual std::vector<int32_t> encode(std::string_view text) const = 0;
  // The text of `ids` (special tokens such as BOS/EOS produce no text).
  // decode(encode(t)) == t for every valid UTF-8 text t.
  virtual std::string decode(const std::vector<int32_t>& ids) const = 0;
  virtual int vocab_size() const = 0;
  virtual int bos_id() const = 0;  // -1 when the tokenizer has none
  virtual int eos_id() const = 0;  // -1 when the tokenizer has none
};

// Loads a tokenizer from a file (tokenizer.model, tokenizer.bin, tokenizer.json) or
// from a model folder (looks for tokenizer.json, then tokenizer.model, then tokenizer.bin).
// Throws ph::Error naming the file and the problem.
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path);

}  // namespace ph
