// Continuous batching: the sequences of every request, whatever adapter they use, decoded
// together by one thread, one BatchDecoder step at a time.
//
// Each step takes the next token of every decoding sequence and a chunk of the prompt of
// sequences still being prefilled (chunked, so that a long prompt does not stall the
// others); new sequences join between steps, finished and cancelled ones leave at once
// and free their cache. Each sequence samples with its own Sampler(sampling, seed), as
// generate() does, and BatchDecoder's rows do not depend on each other: a sequence's
// tokens are the same alone or under any load, and equal generate()'s.
//
// Callbacks run on the scheduler thread, between steps: keep them short (hand the token
// to the connection's thread).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include <xtensor/xtensor.hpp>

#include "host/serve/prepared_prompt.h"
#include "models/engine/model.h"
#include "models/generate/sampler.h"

namespace ph::serve {

enum class FinishReason {
  kStop,       // a stop id was generated, or on_token returned false (a stop string)
  kLength,     // max_tokens generated
  kCancelled,  // cancel(), the client went away
  kShutdown,   // drain() ran out of time, or the scheduler was destroyed
  kError,      // the decoding step or a callback failed (reported on standard error)
};
const char* finish_reason_name(FinishReason reason);  // "stop", "length", "cancelled", ...

struct SequenceRequest {
  PreparedPrompt prompt;
  int max_tokens = 16;  // the caller has checked that injection + prompt + max_tokens fit
  SamplingOptions sampling;
  uint64_t seed = 0;
  std::vector<int32_t> stop_ids;  // stop_ids(config, tokenizer eos), as generate() uses
  // echo with logprobs: called once when the prompt is prefilled, with the logits at
  // every prompt token ([prompt tokens, vocab]); null: not wanted.
  std::function<void(const xt::xtensor<float, 2>& logits)> on_prompt_logits;
  // Every generated token with the logits it was sampled from; returning false ends the
  // sequence there (FinishReason::kStop), the token included.
  std::function<bool(int32_t token, const xt::xtensor<float, 1>& logits)> on_token;
  // Exactly once, last.
  std::function<void(FinishReason reason)> on_finish;
};

struct SchedulerOptions {
  int max_sequences = 64;  // sequences decoded at once; more wait in the queue
  int max_queue = 256;     // sequences waiting; beyond it submit() refuses (429)
  int prefill_chunk = 64;  // prompt tokens of one sequence per step
  // Prompt tokens of all sequences together per step (oldest first): decoding sequences
  // are not held up by a crowd of new prompts. At least prefill_chunk.
  int prefill_budget = 256;
};

struct SchedulerStats {
  int queued = 0;  // sequences waiting for a slot
  int active = 0;  // sequences in the batch (prefilling or decoding)
  uint64_t steps = 0;
};

// After every step (scheduler thread): for the metrics.
struct StepReport {
  int sequences = 0;  // rows' sequences in the step
  int rows = 0;       // tokens processed (prefill chunks + decoded tokens)
  double seconds = 0;
};

class Scheduler {
 public:
  Scheduler(const Model& model, SchedulerOptions options,
            std::function<void(const StepReport&)> on_step = {});
  // Cancels whatever still runs (on_finish(kShutdown)) and joins the thread.
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Queues one request's sequences (its n choices), admitted together. Returns the
  // request's id (> 0), or 0 when they do not fit in the queue or the scheduler is
  // draining; then no callback is ever called. Throws ApiError (400, naming the field)
  // for a request that cannot run, before queuing any of it: no sequences, more than
  // max_sequences of them, a token outside the vocabulary or a virtual slot without its
  // row, injection + prompt beyond the context (code context_length_exceeded), an empty
  // prompt after an injection without virtual tokens, max_tokens < 0, sampling options
  // out of range. A max_tokens reaching past the context is cut there (kLength), as
  // generate() cuts it.
  uint64_t submit(std::vector<SequenceRequest> sequences);
  // Ends the request's sequences before their next step (on_finish(kCancelled)), whether
  // queued or running; an unknown or finished id is ignored. Any thread.
  void cancel(uint64_t request);
  SchedulerStats stats() const;
  // Stops admitting, lets queued and running sequences finish for up to `timeout`, then
  // ends the rest with kShutdown. Returns when none is left.
  void drain(std::chrono::milliseconds timeout);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ph::serve
