#include "models/tokenizer/bpe_model.h"

#include <mutex>
#include <queue>

#include <nlohmann/json.hpp>

#include "models/common/error.h"
#include "models/tokenizer/text_util.h"

namespace ph::tok {
namespace {

using json = nlohmann::json;

// Words longer than this are merged every time (they are rare, and would bloat the cache);
// the cache stops growing at kCacheCapacity words, as Hugging Face's does.
constexpr size_t kMaxCachedWordBytes = 256;
constexpr size_t kCacheCapacity = 50000;

// A merge as tokenizer.json spells it: "left right" (older files) or ["left", "right"].
std::pair<std::string, std::string> parse_merge(const json& merge, size_t index,
                                                const std::string& file) {
  const auto bad = [&] {
    return Error(file + ": merge " + std::to_string(index) + " is not \"left right\" or " +
                 "[left, right]: " + merge.dump().substr(0, 100));
  };
  if (merge.is_array()) {
    if (merge.size() != 2 || !merge[0].is_string() || !merge[1].is_string()) throw bad();
    return {merge[0].get<std::string>(), merge[1].get<std::string>()};
  }
  if (!merge.is_string()) throw bad();
  const auto text = merge.get<std::string>();
  const size_t space = text.find(' ');
  if (space == std::string::npos || text.find(' ', space + 1) != std::string::npos) throw bad();
  return {text.substr(0, space), text.substr(space + 1)};
}

// One symbol of a word being merged: a token id and its neighbours (a linked list, so
// merging is O(1)); `alive` turns false when the symbol is merged into its left one.
struct Symbol {
  int32_t id;
  int prev, next;
  bool alive;
};

}  // namespace

BpeModel::BpeModel(const json& model, const std::string& file) {
  vocab_ = read_vocab_object(model, file);
  continuing_subword_prefix_ = optional_string(model, "continuing_subword_prefix", file);
  end_of_word_suffix_ = optional_string(model, "end_of_word_suffix", file);
  fuse_unk_ = model.value("fuse_unk", false);
  byte_fallback_ = model.value("byte_fallback", false);
  ignore_merges_ = model.value("ignore_merges", false);
  if (const auto unk = optional_string(model, "unk_token", file); !unk.empty()) {
    const auto it = vocab_.find(unk);
    if (it == vocab_.end()) {
      throw Error(file + ": model.unk_token '" + unk + "' is not in the vocabulary");
    }
    unk_id_ = it->second;
  }
  // "dropout" is a training-time randomisation of merges; encoding ignores it, as
  // inference with Hugging Face's tokenizers does.

  const json& merges = model.at("merges");
  if (!merges.is_array()) throw Error(file + ": model.merges is not a list");
  merges_.reserve(merges.size());
  const auto id_of = [&](const std::string& token, size_t index, const char* role) {
    const auto it = vocab_.find(token);
    if (it == vocab_.end()) {
      throw Error(file + ": merge " + std::to_string(index) + " has a " + role + " '" + token +
                  "' that is not in the vocabulary");
    }
    return it->second;
  };
  const size_t prefix_length = continuing_subword_prefix_.size();
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const auto [left, right] = parse_merge(merges[rank], rank, file);
    // With a continuing-subword prefix ("##"), the right part's prefix is not repeated.
    const bool strip_prefix =
        prefix_length > 0 && right.compare(0, prefix_length, continuing_subword_prefix_) == 0;
    const std::string merged = left + (strip_prefix ? right.substr(prefix_length) : right);
    // One statement each, so that a merge with several unknown tokens names the same one
    // (left, then right, then result) whatever order a compiler evaluates arguments in.
    const int32_t left_id = id_of(left, rank, "left part");
    const int32_t right_id = id_of(right, rank, "right part");
    const int32_t merged_id = id_of(merged, rank, "result");
    // A pair listed twice keeps its last rank, as in Hugging Face's merge map.
    merges_[pair_key(left_id, right_id)] = {static_cast<int32_t>(rank), merged_id};
  }
}

void BpeModel::encode_word(const std::string& word, std::vector<int32_t>& ids) const {
  if (word.empty()) return;
  if (ignore_merges_) {
    // Llama 3 style: a word that is a token is that token, whatever the merges say.
    if (const auto it = vocab_.find(word); it != vocab_.end()) {
      ids.push_back(it->second);
      return;
    }
  }
  const bool cacheable = word.size() <= kMaxCachedWordBytes;
  if (cacheable) {
    std::shared_lock lock(cache_mutex_);
    if (const auto it = cache_.find(word); it != cache_.end()) {
      ids.insert(ids.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<int32_t> merged = merge_word(word);
  ids.insert(ids.end(), merged.begin(), merged.end());
  if (cacheable) {
    std::unique_lock lock(cache_mutex_);
    if (cache_.size() < kCacheCapacity) cache_.emplace(word, std::move(merged));
  }
}

std::vector<int32_t> BpeModel::merge_word(const std::string& word) const {
  // 1. One symbol per character, spelled as the vocabulary spells it.
  std::vector<Symbol> symbols;
  const auto add = [&](int32_t id) {
    const int index = static_cast<int>(symbols.size());
    symbols.push_back({id, index - 1, index + 1, true});
  };
  int32_t pending_unk = -1;  // an unknown run not added yet (fuse_unk joins runs into one)
  for (size_t pos = 0; pos < word.size();) {
    const size_t length = utf8_char_length(word, pos);
    std::string piece = word.substr(pos, length);
    if (pos > 0) piece.insert(0, continuing_subword_prefix_);
    pos += length;
    if (pos == word.size()) piece += end_of_word_suffix_;

    if (const auto it = vocab_.find(piece); it != vocab_.end()) {
      if (pending_unk >= 0) add(pending_unk);
      pending_unk = -1;
      add(it->second);
      continue;
    }
    if (std::vector<int32_t> bytes; byte_fallback_ && append_byte_pieces(piece, vocab_, bytes)) {
      if (pending_unk >= 0) add(pending_unk);
      pending_unk = -1;
      for (const int32_t id : bytes) add(id);
      continue;
    }
    // Without an unknown token the character is dropped, as Hugging Face does.
    if (unk_id_ >= 0) {
      if (pending_unk >= 0 && !fuse_unk_) add(pending_unk);
      pending_unk = unk_id_;
    }
  }
  if (pending_unk >= 0) add(pending_unk);
  if (symbols.empty()) return {};
  symbols.back().next = -1;

  // 2. Merge the lowest-ranked adjacent pair until none is left; ties go to the leftmost.
  struct Candidate {
    int32_t rank;
    int pos;
    int32_t new_id;
    bool operator<(const Candidate& other) const {  // std::priority_queue pops the largest
      return rank != other.rank ? rank > other.rank : pos > other.pos;
    }
  };
  std::priority_queue<Candidate> queue;
  const auto find_merge = [&](int left) -> const Merge* {
    const int right = symbols[left].next;
    if (right < 0) return nullptr;
    const auto it = merges_.find(pair_key(symbols[left].id, symbols[right].id));
    return it == merges_.end() ? nullptr : &it->second;
  };
  for (int i = 0; i + 1 < static_cast<int>(symbols.size()); ++i) {
    if (const Merge* m = find_merge(i)) queue.push({m->rank, i, m->new_id});
  }
  while (!queue.empty()) {
    const Candidate top = queue.top();
    queue.pop();
    Symbol& left = symbols[top.pos];
    if (!left.alive || left.next < 0) continue;
    // Stale entry: one side has changed since it was queued.
    const Merge* current = find_merge(top.pos);
    if (!current || current->new_id != top.new_id) continue;

    Symbol& right = symbols[left.next];
    right.alive = false;
    left.id = top.new_id;
    left.next = right.next;
    if (left.next >= 0) symbols[left.next].prev = top.pos;
    if (left.prev >= 0) {
      if (const Merge* m = find_merge(left.prev)) queue.push({m->rank, left.prev, m->new_id});
    }
    if (const Merge* m = find_merge(top.pos)) queue.push({m->rank, top.pos, m->new_id});
  }

  std::vector<int32_t> ids;
  for (int i = 0; i >= 0; i = symbols[i].next) ids.push_back(symbols[i].id);
  return ids;
}

}  // namespace ph::tok
