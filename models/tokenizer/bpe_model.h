// The "model" of a Hugging Face tokenizer.json of type BPE: vocabulary, ranked merges,
// unknown-token and byte-fallback rules. Turns one pre-tokenized word into ids exactly
// as Hugging Face's `tokenizers` does (lowest-ranked pair first, leftmost on ties).
#pragma once

#include <cstdint>
#include <shared_mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "models/tokenizer/hf_model.h"

namespace ph::tok {

class BpeModel final : public HfModel {
 public:
  // `model` is the tokenizer.json's "model" object; errors name `file`.
  BpeModel(const nlohmann::json& model, const std::string& file);

  // Appends the ids of one word. Thread-safe; results are cached per word, since the
  // words of a corpus repeat a lot and merging is the expensive part.
  void encode_word(const std::string& word, std::vector<int32_t>& ids) const override;

  const std::unordered_map<std::string, int32_t>& vocab() const override { return vocab_; }

 private:
  struct Merge {
    int32_t rank;
    int32_t new_id;
  };
  static uint64_t pair_key(int32_t left, int32_t right) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) |
           static_cast<uint32_t>(right);
  }

  std::vector<int32_t> merge_word(const std::string& word) const;

  std::unordered_map<std::string, int32_t> vocab_;
  std::unordered_map<uint64_t, Merge> merges_;
  int32_t unk_id_ = -1;
  bool fuse_unk_ = false;
  bool byte_fallback_ = false;
  bool ignore_merges_ = false;
  std::string continuing_subword_prefix_;
  std::string end_of_word_suffix_;

  mutable std::shared_mutex cache_mutex_;
  mutable std::unordered_map<std::string, std::vector<int32_t>> cache_;
};

}  // namespace ph::tok
