// llama2.c's tokenizer.bin: int32 max_token_length, then per piece a float score, an
// int32 byte length and the bytes (SentencePiece's "▁" written as a space). The number
// of pieces is not stored: it is however many follow until the end of the file.
//
// Encoding is llama2.c's `encode` (run.c): a dummy-prefix space before non-empty text,
// one token per UTF-8 character (its bytes as tokens byte+3 when the character is not a
// piece), then repeatedly merge the adjacent pair whose concatenation is the piece with
// the highest score (the leftmost such pair on ties). run.c rescans all pairs after each
// merge (quadratic); a priority queue with the same order gives the same tokens in
// n log n. Two deliberate differences, both on texts llama2.c cannot round-trip: the
// special pieces (ids 0-2) and the <0xXX> byte pieces are never produced by merging (as
// in SentencePiece, where they are not mergeable), and a vocabulary without " " falls
// back to the space's byte for the dummy prefix instead of writing id -1.
#include <cmath>
#include <cstring>
#include <queue>
#include <unordered_map>

#include "models/common/error.h"
#include "models/tokenizer/text_util.h"
#include "models/tokenizer/tokenizer_formats.h"

namespace ph::tok {
namespace {

// llama2.c's fixed ids.
constexpr int32_t kUnkId = 0;
constexpr int32_t kBosId = 1;
constexpr int32_t kEosId = 2;
constexpr int32_t kFirstByteId = 3;  // <0x00> .. <0xFF> are ids 3 .. 258
constexpr int32_t kMinVocab = kFirstByteId + 256;
// run.c's best_score starts here: a pair scoring no more than this is never merged.
constexpr float kNoMergeScore = -1e10f;
// A bound on max_token_length that no real vocabulary comes near (Llama 2's is 27 bytes):
// a larger value is a sign of a file that is not a tokenizer.bin.
constexpr int32_t kMaxPieceBytes = 65536;

class Llama2cTokenizer final : public Tokenizer {
 public:
  Llama2cTokenizer(std::string path, std::vector<std::string> pieces, std::vector<float> scores);

  std::vector<int32_t> encode(std::string_view text) const override;
  std::string decode(const std::vector<int32_t>& ids) const override;
  std::string piece(int32_t id) const override {
    check_token_id(path_, id, vocab_size());
    return pieces_[id];
  }
  int vocab_size() const override { return static_cast<int>(pieces_.size()); }
  int bos_id() const override { return kBosId; }
  int eos_id() const override { return kEosId; }

 private:
  // Appends the piece for one character, or its bytes.
  void append_character(std::string_view character, std::vector<int32_t>& tokens) const;
  // The id of a piece that text can produce, or -1.
  int32_t lookup(const std::string& piece) const {
    const auto it = ids_.find(piece);
    return it == ids_.end() ? -1 : it->second;
  }

  std::string path_;
  std::vector<std::string> pieces_;
  std::vector<float> scores_;
  std::unordered_map<std::string, int32_t> ids_;  // excludes special and byte pieces
};

Llama2cTokenizer::Llama2cTokenizer(std::string path, std::vector<std::string> pieces,
                                   std::vector<float> scores)
    : path_(std::move(path)), pieces_(std::move(pieces)), scores_(std::move(scores)) {
  for (int32_t id = kMinVocab; id < static_cast<int32_t>(pieces_.size()); ++id) {
    ids_.emplace(pieces_[id], id);  // a repeated piece keeps its first id
  }
}

void Llama2cTokenizer::append_character(std::string_view character,
                                        std::vector<int32_t>& tokens) const {
  const int32_t id = lookup(std::string(character));
  if (id >= 0) {
    tokens.push_back(id);
    return;
  }
  for (const char byte : character) {
    tokens.push_back(kFirstByteId + static_cast<unsigned char>(byte));
  }
}

std::vector<int32_t> Llama2cTokenizer::encode(std::string_view text) const {
  std::vector<int32_t> initial;
  if (text.empty()) return initial;
  append_character(" ", initial);  // the dummy prefix
  for (size_t pos = 0; pos < text.size();) {
    // run.c's grouping: a byte and the continuation bytes after it, at most 4 in all.
    size_t length = 1;
    while (pos + length < text.size() && length < 4 &&
           (static_cast<unsigned char>(text[pos + length]) & 0xC0) == 0x80) {
      ++length;
    }
    append_character(text.substr(pos, length), initial);
    pos += length;
  }

  // Tokens as a linked list; `version` changes whenever a token does, which tells the
  // queue's entries that are out of date.
  struct Symbol {
    int32_t id;
    int prev, next;
    uint32_t version;
    bool alive;
  };
  std::vector<Symbol> symbols;
  symbols.reserve(initial.size());
  for (size_t i = 0; i < initial.size(); ++i) {
    symbols.push_back({initial[i], static_cast<int>(i) - 1, static_cast<int>(i) + 1, 0, true});
  }
  symbols.back().next = -1;

  struct Candidate {
    float score;
    int left, right;
    uint32_t left_version, right_version;
    int32_t id;
    bool operator<(const Candidate& other) const {  // highest score, then leftmost, on top
      return score != other.score ? score < other.score : left > other.left;
    }
  };
  std::priority_queue<Candidate> queue;
  const auto consider = [&](int left, int right) {
    if (left < 0 || right < 0) return;
    const int32_t id = lookup(pieces_[symbols[left].id] + pieces_[symbols[right].id]);
    if (id >= 0 && scores_[id] > kNoMergeScore) {
      queue.push({scores_[id], left, right, symbols[left].version, symbols[right].version, id});
    }
  };
  for (int i = 0; i + 1 < static_cast<int>(symbols.size()); ++i) consider(i, i + 1);

  while (!queue.empty()) {
    const Candidate top = queue.top();
    queue.pop();
    Symbol& left = symbols[top.left];
    Symbol& right = symbols[top.right];
    if (!left.alive || !right.alive || left.next != top.right || left.version != top.left_version ||
        right.version != top.right_version) {
      continue;
    }
    left.id = top.id;
    ++left.version;
    right.alive = false;
    left.next = right.next;
    if (left.next >= 0) symbols[left.next].prev = top.left;
    consider(left.prev, top.left);
    consider(top.left, left.next);
  }

  std::vector<int32_t> tokens;
  for (int i = 0; i >= 0; i = symbols[i].next) tokens.push_back(symbols[i].id);
  return tokens;
}

std::string Llama2cTokenizer::decode(const std::vector<int32_t>& ids) const {
  std::string text;
  // As run.c's decode, the space after BOS is dropped; here also at the start, since
  // encode() puts the dummy prefix there without a BOS.
  bool after_bos = true;
  for (const int32_t id : ids) {
    check_token_id(path_, id, vocab_size());
    if (id < kFirstByteId) {  // <unk>, BOS and EOS produce no text
      after_bos = id == kBosId;
      continue;
    }
    std::string piece =
        id < kMinVocab ? std::string(1, static_cast<char>(id - kFirstByteId)) : pieces_[id];
    if (after_bos && !piece.empty() && piece[0] == ' ') piece.erase(0, 1);
    after_bos = false;
    text += piece;
  }
  return text;
}

// Reads the little-endian int32 / float at `pos` (the caller checked 4 bytes remain).
int32_t read_int32(const std::string& data, size_t pos) {
  int32_t value;
  std::memcpy(&value, data.data() + pos, sizeof value);
  return value;
}
float read_float(const std::string& data, size_t pos) {
  float value;
  std::memcpy(&value, data.data() + pos, sizeof value);
  return value;
}

}  // namespace

std::unique_ptr<Tokenizer> load_llama2c_tokenizer(const std::string& path) {
  const std::string data = read_file(path, "llama2.c tokenizer");
  const auto corrupt = [&](const std::string& problem) {
    return Error(path + ": not a valid llama2.c tokenizer.bin: " + problem);
  };
  if (data.size() < 4) {
    throw corrupt("the file is " + std::to_string(data.size()) +
                  " bytes, too short for its header");
  }
  const int32_t max_length = read_int32(data, 0);
  if (max_length <= 0 || max_length > kMaxPieceBytes) {
    throw corrupt("max_token_length is " + std::to_string(max_length));
  }

  std::vector<std::string> pieces;
  std::vector<float> scores;
  for (size_t pos = 4; pos < data.size();) {
    const std::string where =
        "piece " + std::to_string(pieces.size()) + " (at byte " + std::to_string(pos) + ")";
    const size_t remaining = data.size() - pos;
    if (remaining < 8) {
      throw corrupt("truncated: " + where + " has " + std::to_string(remaining) +
                    " of the 8 bytes of its score and length");
    }
    const float score = read_float(data, pos);
    const int32_t length = read_int32(data, pos + 4);
    pos += 8;
    if (!std::isfinite(score)) throw corrupt(where + " has a score that is not a finite number");
    if (length < 0 || length > max_length) {
      throw corrupt(where + " has length " + std::to_string(length) + ", outside 0.." +
                    std::to_string(max_length) + " (max_token_length)");
    }
    if (static_cast<size_t>(length) > data.size() - pos) {
      throw corrupt("truncated: " + where + " needs " + std::to_string(length) + " bytes, only " +
                    std::to_string(data.size() - pos) + " remain");
    }
    pieces.push_back(data.substr(pos, length));
    scores.push_back(score);
    pos += length;
  }

  // Byte fallback writes byte b as id b+3: the file must have the byte pieces there.
  if (pieces.size() < static_cast<size_t>(kMinVocab)) {
    throw corrupt("it has " + std::to_string(pieces.size()) + " pieces, fewer than the " +
                  std::to_string(kMinVocab) + " of <unk>, <s>, </s> and the 256 byte pieces");
  }
  for (int byte = 0; byte < 256; ++byte) {
    if (pieces[kFirstByteId + byte] != byte_piece_name(static_cast<uint8_t>(byte))) {
      throw corrupt("piece " + std::to_string(kFirstByteId + byte) + " is '" +
                    pieces[kFirstByteId + byte] + "', not the byte piece " +
                    byte_piece_name(static_cast<uint8_t>(byte)) +
                    " that llama2.c's byte fallback needs there");
    }
  }
  return std::make_unique<Llama2cTokenizer>(path, std::move(pieces), std::move(scores));
}

}  // namespace ph::tok
