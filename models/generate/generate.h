// Text generation with a frozen model and a soft-prompt injection, KV-cached.
//
// The injection's part of the key/value cache (its prefix and its prepended virtual
// tokens) does not depend on the request, so it is computed once, in an
// InjectionCache, and every request and every sample starts from a copy of it: a
// request pays only for its own prompt and the tokens it generates.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include <xtensor/xtensor.hpp>

#include "models/engine/engine.h"
#include "models/generate/sampler.h"

namespace ph {

// The key/value cache of an injection, built once and shared read-only by requests.
// Positions 0..n_prefix-1 hold the key/value prefix, the next n_virtual the prepended
// virtual tokens (peft-spec: virtual tokens are ordinary positions, text follows); the
// gated adapter attention's projected prompts (LLaMA-Adapter) go with every cache.
class InjectionCache {
 public:
  // No injection: an empty cache, generation starts at position 0.
  InjectionCache() = default;
  // Runs append_prefix for the injection's prefix and extend() over its virtual tokens
  // (which must be shared, [1, n, dim]: one set for every request). An empty injection
  // gives an empty cache. Throws ph::Error if the injection does not fit the model or
  // its context.
  InjectionCache(const Model& model, const Injection& injection);

  // Positions the injection occupies (n_prefix + n_virtual).
  int length() const { return cache_.length; }
  // A cache for one request of `model` (the one the cache was built with): the
  // injection's positions, with room for `capacity` positions in all. The shared cache
  // itself is never modified. Throws ph::Error if the model's geometry differs.
  KVCache start(const Model& model, int capacity) const;
  // Logits after the last virtual token (what follows the injection when the prompt is
  // empty); empty when the injection has no virtual tokens.
  const xt::xtensor<float, 1>& last_logits() const { return last_logits_; }

 private:
  KVCache cache_;  // capacity == length: no room is kept that no request would use
  xt::xtensor<float, 1> last_logits_;
  // LLaMA-Adapter's per-layer projected prompts and gates (KVCache::adapter_kv), which
  // take no positions: every request's cache gets them.
  std::vector<xt::xtensor<float, 2>> adapter_kv_;
  std::vector<float> adapter_gates_;
};

struct GenerateOptions {
  int max_new_tokens = 64;
  SamplingOptions sampling;  // temperature 0.8, no top-k, no top-p by default
  uint64_t seed = 0;
  // Generation stops after producing one of these ids (which is returned); empty: it
  // never stops early. stop_ids() gives a model's.
  std::vector<int32_t> stop_ids;
  // Called for each generated token as soon as it is chosen, with the logits it was
  // chosen from: for streaming output, and for callers that want the scores.
  std::function<void(int32_t token, const xt::xtensor<float, 1>& logits)> on_token;
  // Rows [n, dim] for virtual slots (virtual_slot(k)) inside the prompt: the virtual
  // tokens a template puts after the start (P-tuning), which the injection cache cannot hold.
  xt::xtensor<float, 2> virtual_tokens;
};

// The ids generation with `config`'s model stops at: its EOS (config.json's, else
// `tokenizer_eos`; none when both are -1), and its BOS when BOS separates the texts it was
// trained on (config.bos_ends_text: llama2.c checkpoints, where run.c stops at BOS too).
std::vector<int32_t> stop_ids(const ModelConfig& config, int32_t tokenizer_eos);

// Continues `prompt` (token ids, BOS included if the model wants one) after the
// injection and returns the generated ids: at most max_new_tokens, ending with a stop id
// if one was produced, and fewer if the context fills up (the injection, prompt and
// generated tokens together never exceed config.max_positions).
// Throws ph::Error if a prompt id is outside the vocabulary (naming it), if the injection
// plus prompt alone exceed the context, or if both the prompt and the injection's
// virtual tokens are empty (nothing to predict from).
std::vector<int32_t> generate(const Model& model, const InjectionCache& injection,
                              const std::vector<int32_t>& prompt, const GenerateOptions& options);

}  // namespace ph
