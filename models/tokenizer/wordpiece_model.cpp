#include "models/tokenizer/wordpiece_model.h"

#include <algorithm>

#include <nlohmann/json.hpp>

#include "models/common/error.h"
#include "models/tokenizer/text_util.h"

namespace ph::tok {

WordPieceModel::WordPieceModel(const nlohmann::json& model, const std::string& file) {
  vocab_ = read_vocab_object(model, file);
  const std::string unk = model.contains("unk_token") ? optional_string(model, "unk_token", file)
                                                      : std::string("[UNK]");
  const auto it = vocab_.find(unk);
  // Hugging Face fails at the first unknown word instead; a file that cannot encode every
  // text is refused when it is loaded.
  if (it == vocab_.end()) {
    throw Error(file + ": model.unk_token '" + unk + "' is not in the vocabulary");
  }
  unk_id_ = it->second;
  for (const auto& [token, id] : vocab_)
    longest_token_bytes_ = std::max(longest_token_bytes_, token.size());
  continuing_subword_prefix_ = model.contains("continuing_subword_prefix")
                                   ? optional_string(model, "continuing_subword_prefix", file)
                                   : std::string("##");
  if (model.contains("max_input_chars_per_word")) {
    const nlohmann::json& max = model["max_input_chars_per_word"];
    if (!max.is_number_unsigned()) {
      throw Error(file + ": model.max_input_chars_per_word is not a non-negative integer");
    }
    max_input_chars_per_word_ = max.get<size_t>();
  }
}

void WordPieceModel::encode_word(const std::string& word, std::vector<int32_t>& ids) const {
  if (word.empty()) return;
  // Character boundaries: pieces are cut between characters, never inside one.
  std::vector<size_t> boundaries;
  for (size_t pos = 0; pos < word.size(); pos += utf8_char_length(word, pos)) {
    boundaries.push_back(pos);
  }
  if (boundaries.size() > max_input_chars_per_word_) {
    ids.push_back(unk_id_);
    return;
  }
  boundaries.push_back(word.size());

  std::vector<int32_t> pieces;
  std::string candidate;
  for (size_t start = 0; start + 1 < boundaries.size();) {
    // The longest piece from boundaries[start]: try every end, longest first (ends past
    // the longest token cannot match, and would make a long word quadratic).
    const auto past_longest = std::upper_bound(boundaries.begin() + start, boundaries.end(),
                                               boundaries[start] + longest_token_bytes_);
    size_t end = static_cast<size_t>(past_longest - boundaries.begin()) - 1;
    int32_t id = -1;
    for (; end > start; --end) {
      candidate.assign(start > 0 ? continuing_subword_prefix_ : std::string());
      candidate.append(word, boundaries[start], boundaries[end] - boundaries[start]);
      if (const auto it = vocab_.find(candidate); it != vocab_.end()) {
        id = it->second;
        break;
      }
    }
    if (id < 0) {  // no piece covers this part: the whole word is unknown
      ids.push_back(unk_id_);
      return;
    }
    pieces.push_back(id);
    start = end;
  }
  ids.insert(ids.end(), pieces.begin(), pieces.end());
}

}  // namespace ph::tok
