#include "models/tokenizer/unigram_model.h"

#include <cmath>
#include <limits>

#include <nlohmann/json.hpp>

#include "models/common/error.h"
#include "models/tokenizer/text_util.h"

namespace ph::tok {
namespace {

// Hugging Face's (and SentencePiece's) penalty of an unknown character below the lowest
// piece score.
constexpr double kUnknownPenalty = 10.0;

}  // namespace

UnigramModel::UnigramModel(const nlohmann::json& model, const std::string& file) : file_(file) {
  const nlohmann::json& vocab = model.at("vocab");
  if (!vocab.is_array()) throw Error(file + ": model.vocab is not a list of [piece, score]");
  if (vocab.size() > static_cast<size_t>(std::numeric_limits<int32_t>::max())) {
    throw Error(file + ": model.vocab has too many pieces");
  }
  piece_at_.push_back(-1);
  double min_score = std::numeric_limits<double>::infinity();
  for (size_t i = 0; i < vocab.size(); ++i) {
    const nlohmann::json& entry = vocab[i];
    if (!entry.is_array() || entry.size() != 2 || !entry[0].is_string() || !entry[1].is_number()) {
      throw Error(file + ": model.vocab[" + std::to_string(i) +
                  "] is not [piece, score]: " + entry.dump().substr(0, 100));
    }
    const std::string piece = entry[0].get<std::string>();
    const double score = entry[1].get<double>();
    if (!std::isfinite(score)) {
      throw Error(file + ": model.vocab[" + std::to_string(i) + "] has a score that is not finite");
    }
    const auto id = static_cast<int32_t>(i);
    // A piece listed twice keeps its last id, as in Hugging Face's token map.
    vocab_[piece] = id;
    scores_.push_back(score);
    add_to_trie(piece, id);
    min_score = std::min(min_score, score);
  }
  unk_score_ = min_score - kUnknownPenalty;
  if (model.contains("unk_id") && !model["unk_id"].is_null()) {
    const nlohmann::json& unk = model["unk_id"];
    if (!unk.is_number_unsigned() || unk.get<uint64_t>() >= vocab.size()) {
      throw Error(file + ": model.unk_id " + unk.dump() + " is not a piece of the " +
                  std::to_string(vocab.size()) + " of model.vocab");
    }
    unk_id_ = unk.get<int32_t>();
  }
  byte_fallback_ = model.value("byte_fallback", false);
}

int32_t UnigramModel::child(int32_t node, unsigned char byte) const {
  const auto it = edges_.find((static_cast<uint64_t>(node) << 8) | byte);
  return it == edges_.end() ? -1 : it->second;
}

void UnigramModel::add_to_trie(const std::string& piece, int32_t id) {
  int32_t node = 0;
  for (const char c : piece) {
    const uint64_t key = (static_cast<uint64_t>(node) << 8) | static_cast<unsigned char>(c);
    const auto [it, added] = edges_.emplace(key, static_cast<int32_t>(piece_at_.size()));
    if (added) piece_at_.push_back(-1);
    node = it->second;
  }
  if (node > 0) piece_at_[node] = id;
}

void UnigramModel::append_piece(const std::string& piece, std::vector<int32_t>& ids) const {
  if (const auto it = vocab_.find(piece); it != vocab_.end()) {
    ids.push_back(it->second);
    return;
  }
  if (byte_fallback_ && append_byte_pieces(piece, vocab_, ids)) return;
  ids.push_back(unk_id_);  // >= 0: a piece not in the vocabulary is an unknown run
}

void UnigramModel::encode_word(const std::string& word, std::vector<int32_t>& ids) const {
  if (word.empty()) return;
  // best[end]: the best split of word[0, end) — its score, and its last piece
  // word[start, end) with that piece's id (the unknown token for an uncovered character).
  struct Best {
    double score = 0;
    size_t start = 0;
    int32_t id = -1;
    bool reached = false;
  };
  std::vector<Best> best(word.size() + 1);
  best[0].reached = true;
  const auto offer = [&](size_t start, size_t end, int32_t id, double score) {
    const double total = best[start].score + score;
    if (!best[end].reached || total > best[end].score) best[end] = {total, start, id, true};
  };
  for (size_t start = 0; start < word.size();) {
    const size_t char_length = utf8_char_length(word, start);
    bool covers_char = false;  // some piece is exactly the character at `start`
    int32_t node = 0;
    for (size_t end = start; end < word.size();) {
      node = child(node, static_cast<unsigned char>(word[end]));
      if (node < 0) break;
      ++end;
      if (const int32_t id = piece_at_[node]; id >= 0) {
        offer(start, end, id, scores_[id]);
        covers_char |= end - start == char_length;
      }
    }
    if (!covers_char) {
      // As Hugging Face's: an uncovered character needs the unknown token, even with
      // byte_fallback (whose bytes replace it only afterwards).
      if (unk_id_ < 0) {
        throw Error(file_ + ": the text has a character that no piece covers, and the " +
                    "model has no unk_id");
      }
      offer(start, start + char_length, unk_id_, unk_score_);
    }
    start += char_length;
  }

  // Back from the end; runs of unknown characters become one piece.
  std::vector<std::string> pieces;
  std::string unknown_run;
  for (size_t end = word.size(); end > 0;) {
    const Best& node = best[end];
    std::string piece = word.substr(node.start, end - node.start);
    if (node.id == unk_id_) {
      unknown_run.insert(0, piece);
    } else {
      if (!unknown_run.empty()) pieces.push_back(std::move(unknown_run));
      unknown_run.clear();
      pieces.push_back(std::move(piece));
    }
    end = node.start;
  }
  if (!unknown_run.empty()) pieces.push_back(std::move(unknown_run));
  for (auto it = pieces.rbegin(); it != pieces.rend(); ++it) append_piece(*it, ids);
}

}  // namespace ph::tok
