// The Unigram "model" of a Hugging Face tokenizer.json (T5, and the other SentencePiece
// unigram models converted by transformers): the split of a word into vocabulary pieces
// whose scores (log probabilities) add up to the most, found by Viterbi, exactly as
// Hugging Face's `tokenizers` finds it. Characters no piece covers become the unknown
// token (a run of them one unknown token), or their bytes' <0xXX> pieces with byte_fallback.
#pragma once

#include <string>
#include <unordered_map>
#include <vector>

#include "models/tokenizer/hf_model.h"

namespace ph::tok {

class UnigramModel final : public HfModel {
 public:
  // `model` is the tokenizer.json's "model" object; errors name `file`.
  UnigramModel(const nlohmann::json& model, const std::string& file);

  void encode_word(const std::string& word, std::vector<int32_t>& ids) const override;
  const std::unordered_map<std::string, int32_t>& vocab() const override { return vocab_; }

 private:
  // The pieces as a byte trie: node 0 is the root, edges_ maps (node << 8 | byte) to the
  // child node, and piece_at_[node] is the piece id that ends there (-1: none).
  int32_t child(int32_t node, unsigned char byte) const;
  void add_to_trie(const std::string& piece, int32_t id);
  // Appends the id of one piece of the best split: its id, its <0xXX> bytes, or unknown.
  void append_piece(const std::string& piece, std::vector<int32_t>& ids) const;

  std::string file_;
  std::unordered_map<std::string, int32_t> vocab_;
  std::vector<double> scores_;
  std::unordered_map<uint64_t, int32_t> edges_;
  std::vector<int32_t> piece_at_;
  int32_t unk_id_ = -1;
  double unk_score_ = 0;
  bool byte_fallback_ = false;
};

}  // namespace ph::tok
