// Text <-> token ids for a frozen model. One interface, four file formats:
// SentencePiece tokenizer.model (BPE as Llama's, unigram as T5's spiece.model),
// llama2.c tokenizer.bin, and Hugging Face tokenizer.json (byte-level BPE as GPT-2,
// SmolLM2, Llama 3, Qwen, RoBERTa and Bloom use it; BPE with byte fallback as Llama and
// Gemma use it; WordPiece as BERT uses it; Unigram as T5 uses it).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace ph {

// The ids a model is given for a text or a pair of texts, and the segment of each id
// (Hugging Face's type_ids, BERT's token_type_ids: 0 for the first text, 1 for the second).
struct Encoding {
  std::vector<int32_t> ids;
  std::vector<int32_t> type_ids;
};

// Where a model's special tokens go around its input, as Hugging Face's
// TemplateProcessing says it: for one text and for a pair, a list of pieces, each a token
// or one of the texts, with its type id. "[CLS] $A [SEP]" is {token 101, first, token 102}.
struct TemplatePiece {
  enum class Kind { kToken, kFirst, kSecond };
  Kind kind;
  int32_t id;  // the token, for kToken
  int32_t type_id;
};
struct SpecialTokensTemplate {
  std::vector<TemplatePiece> single, pair;
};

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

  // The ids a model is given: encode(text) inside the special tokens of
  // special_tokens_template() ("[CLS] text [SEP]" for BERT, "<s> text </s>" for RoBERTa,
  // "text </s>" for T5, "<bos> text" for Gemma and Llama), as Hugging Face's
  // encode(text, add_special_tokens=True) gives them. Without add_special_tokens, encode(text)
  // with type ids 0.
  Encoding encode_for_model(std::string_view text, bool add_special_tokens = true) const;
  // The same for a pair of texts (a question and a passage, two sentences to compare):
  // "[CLS] a [SEP] b [SEP]" with type ids 0 up to the first [SEP] and 1 after it for BERT.
  // Without add_special_tokens, the two texts' ids joined, with the template's type ids
  // (as Hugging Face keeps them: 0 and 1 for BERT, all 0 for RoBERTa and T5).
  Encoding encode_pair(std::string_view first, std::string_view second,
                       bool add_special_tokens = true) const;
  // The special tokens of encode_for_model() and encode_pair(). A tokenizer.json says them
  // in its "post_processor"; the default, for files that do not, puts BOS before each text
  // when there is a BOS (Llama: "<s> a", "<s> a <s> b") and otherwise EOS after each text
  // when there is an EOS (T5's spiece.model: "a </s>", "a </s> b </s>").
  virtual SpecialTokensTemplate special_tokens_template() const;
};

// Loads a tokenizer from a file (tokenizer.model, tokenizer.bin, tokenizer.json) or
// from a model folder (looks for tokenizer.json, then tokenizer.model, then tokenizer.bin).
// Throws ph::Error naming the file and the problem.
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path);

}  // namespace ph
