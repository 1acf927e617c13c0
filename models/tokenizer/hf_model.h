// The "model" of a Hugging Face tokenizer.json: what turns one pre-tokenized word into
// ids. Three kinds: BPE (GPT-2, Llama, Qwen, RoBERTa, Bloom, Gemma), WordPiece (BERT)
// and Unigram (T5).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace ph::tok {

class HfModel {
 public:
  virtual ~HfModel() = default;
  // Appends the ids of one word. Thread-safe.
  virtual void encode_word(const std::string& word, std::vector<int32_t>& ids) const = 0;
  // Every token of the model and its id.
  virtual const std::unordered_map<std::string, int32_t>& vocab() const = 0;
};

// The model that `model` (the tokenizer.json's "model" object) describes; ph::Error naming
// `file` and the field for an unknown type or a malformed model.
std::unique_ptr<HfModel> make_hf_model(const nlohmann::json& model, const std::string& file);

// model.vocab as BPE and WordPiece give it, an object of token -> id; ph::Error naming
// `file` for anything else or an id that is not an int32 >= 0.
std::unordered_map<std::string, int32_t> read_vocab_object(const nlohmann::json& model,
                                                           const std::string& file);
// The ids of the <0xXX> pieces of each byte of `text` (byte fallback), or false (and
// `ids` unchanged) when a byte has none.
bool append_byte_pieces(const std::string& text,
                        const std::unordered_map<std::string, int32_t>& vocab,
                        std::vector<int32_t>& ids);
// An optional string field: absent and null both mean "".
std::string optional_string(const nlohmann::json& model, const char* key, const std::string& file);

}  // namespace ph::tok
