// What one sequence of a completion starts from: its adapter's shared injection cache and
// the prompt that follows it, encoded exactly as `prompthost generate` encodes it.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <xtensor/xtensor.hpp>

#include "models/generate/generate.h"

namespace ph::serve {

struct PreparedPrompt {
  // The adapter's (and task's) prefix and prepended virtual tokens, computed once and
  // shared read-only by every sequence using them; an empty cache for the base model.
  // Never null. Holding it keeps an unloaded adapter's cache alive until the sequence ends.
  std::shared_ptr<const InjectionCache> injection;
  // The tokens after the injection: ids, and virtual_slot(k) where a P-tuning template
  // puts virtual tokens inside the prompt (rows in *virtual_rows). May be empty when the
  // injection ends with virtual tokens (generation then starts from their logits).
  std::vector<int32_t> tokens;
  std::shared_ptr<const xt::xtensor<float, 2>> virtual_rows;  // [n, dim], or null
  // The prompt's real tokens (no virtual slots): what the generated text continues
  // (TextStream's context) and what `echo` returns.
  std::vector<int32_t> text_ids;
  std::string adapter;  // its name; "" for the base model (metrics, logs)
  std::string task;     // a multitask adapter's task name, else ""
};

}  // namespace ph::serve
