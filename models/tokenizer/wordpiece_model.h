// The WordPiece "model" of a Hugging Face tokenizer.json (BERT): each word becomes its
// longest vocabulary prefix, then the longest "##"-prefixed token of the rest, and so on;
// a word with a part no token covers, or longer than max_input_chars_per_word characters,
// becomes the unknown token as a whole. Exactly as Hugging Face's `tokenizers`.
#pragma once

#include <string>
#include <unordered_map>

#include "models/tokenizer/hf_model.h"

namespace ph::tok {

class WordPieceModel final : public HfModel {
 public:
  // `model` is the tokenizer.json's "model" object; errors name `file`.
  WordPieceModel(const nlohmann::json& model, const std::string& file);

  void encode_word(const std::string& word, std::vector<int32_t>& ids) const override;
  const std::unordered_map<std::string, int32_t>& vocab() const override { return vocab_; }

 private:
  std::unordered_map<std::string, int32_t> vocab_;
  std::string continuing_subword_prefix_;
  size_t max_input_chars_per_word_ = 100;
  size_t longest_token_bytes_ = 0;  // no piece is longer: bounds the search
  int32_t unk_id_ = -1;
};

}  // namespace ph::tok
