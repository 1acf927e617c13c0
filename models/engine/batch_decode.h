// Decoding many sequences at once (continuous batching).
//
// Each step runs one forward over the new tokens of every sequence in the batch — a
// sequence's next token while it decodes, or a chunk of its prompt while it is prefilled
// — packed row after row: one product per projection over all the rows (the weights are
// read once for the whole batch, which is what makes batching pay: a decoding step of one
// sequence is bound by memory bandwidth), and attention per row over its own sequence's
// key/value cache. Sequences may use different adapters: an adapter only shapes a
// sequence's cache (its prefix and prepended virtual tokens, InjectionCache) and the rows
// of its template's virtual slots.
//
// Determinism: a row's result is computed in an order that does not depend on the other
// rows of the step, on how a prompt was split into chunks, or on the thread count. So a
// sequence's logits and cache are bit-identical alone or in any batch (for a given
// instruction set, see isa.h), and `prompthost generate` (which decodes through this
// class too, via extend()) and the server agree token for token.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include <xtensor/xtensor.hpp>

#include "models/engine/engine.h"

namespace ph {

struct DecodeItem {
  // The sequence's cache; `tokens` go to positions cache->length.., and their keys and
  // values are appended. Not shared with another item of the same step.
  KVCache* cache = nullptr;
  // Token ids, or virtual_slot(k) taking row k of *virtual_rows.
  std::vector<int32_t> tokens;
  const xt::xtensor<float, 2>* virtual_rows = nullptr;  // [n, dim], or null: no virtual slots
  // false: logits of the last token only ([1, vocab]); true: of every token
  // ([tokens, vocab]; for the prompt's logprobs, `echo` with `logprobs`).
  bool all_logits = false;
};

class BatchDecoderImpl;

class BatchDecoder {
 public:
  explicit BatchDecoder(const Model& model);
  ~BatchDecoder();
  BatchDecoder(const BatchDecoder&) = delete;
  BatchDecoder& operator=(const BatchDecoder&) = delete;

  // One forward over every item's tokens. logits[i] is item i's [1 or tokens, vocab].
  // Checks every item first (token ids within the vocabulary, virtual slots within their
  // rows, room in the cache, no cache twice) and throws ph::Error naming the item and
  // the problem before anything is computed or any cache changed.
  void step(const std::vector<DecodeItem>& items, std::vector<xt::xtensor<float, 2>>& logits);

  // Floating-point operations (2 per multiply-add) of the last step's products and
  // attention, for reporting GFLOP/s.
  double last_step_flops() const;

 private:
  std::unique_ptr<BatchDecoderImpl> impl_;
};

}  // namespace ph
