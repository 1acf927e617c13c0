// One sequence in the scheduler's batch: its cache, its sampler, where it stands (prompt
// tokens prefilled, tokens generated) and the callbacks it reports to. Used by the
// scheduler thread only.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include <xtensor/xtensor.hpp>

#include "host/serve/scheduler.h"
#include "models/engine/batch_decode.h"

namespace ph::serve {

// Throws ApiError (400) when the sequence cannot run on `model` (see Scheduler::submit).
void check_sequence_request(const Model& model, const SequenceRequest& request);

class RunningSequence {
 public:
  // Its cache holds the injection, with room for the prompt and every generated token but
  // the last (which is never fed back). An empty prompt samples its first token at once,
  // from the injection's last logits, as generate() does.
  RunningSequence(const Model& model, uint64_t request, SequenceRequest sequence);

  uint64_t request() const { return request_; }
  bool finished() const { return reason_.has_value(); }
  // Prompt tokens not yet in the cache.
  size_t prompt_left() const { return seq_.prompt.tokens.size() - prefilled_; }
  // Its rows of the next step: the next chunk of the prompt (at most `chunk` tokens), or
  // the last generated token. Only for a sequence not finished.
  DecodeItem next_item(int chunk);
  // The step's logits for the item next_item() gave: prompt logits kept for
  // on_prompt_logits, a token sampled once the prompt is in.
  void take_logits(const xt::xtensor<float, 2>& logits);
  // Ends it (if not already ended) and calls on_finish, once.
  void finish(FinishReason reason);
  // Calls on_finish with the reason it ended for; frees the cache first.
  void report_finish();

 private:
  void prompt_done();
  void sample(const float* row);

  const Model& model_;
  uint64_t request_;
  SequenceRequest seq_;
  Sampler sampler_;
  KVCache cache_;
  int budget_ = 0;        // tokens it may generate: max_tokens, within the context
  size_t prefilled_ = 0;  // prompt tokens in the cache
  size_t fed_ = 0;        // tokens of the current item
  int generated_ = 0;
  int32_t last_ = 0;                  // the last generated token, fed at the next step
  std::vector<float> prompt_logits_;  // on_prompt_logits: rows so far, [prefilled, vocab]
  std::optional<FinishReason> reason_;
  bool reported_ = false;
};

}  // namespace ph::serve
