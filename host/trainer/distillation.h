// Training by context distillation (Cartridges; ph_teacher_spec): the frozen model without
// the injection, seeing a context before the example, is the teacher; its top-k next-token
// probabilities become the example's soft targets (Sequence::soft_targets), which the
// engine's loss then matches (PEFT's examples/cartridge_self_study/train_distill.py).
#pragma once

#include <cstdint>
#include <map>
#include <vector>

#include "models/engine/engine.h"

namespace ph::trainer {

struct TeacherSettings {
  int top_k = 1;             // larger than the vocabulary: all of it
  float temperature = 1.0f;  // the teacher's logits are divided by max(T, 1e-5)
};

// softmax(logits / max(T, 1e-5)) over the whole vocabulary, then its top_k tokens (ties
// by the lower id) with their probabilities, not renormalised.
SoftTarget top_k_target(const float* logits, int vocab, const TeacherSettings& settings);

// The soft targets of `tokens` (one per token; the first empty) from the teacher on
// context ++ tokens: token t's target is the teacher's distribution at position
// context.size() + t - 1. Throws ph::Error when the two do not fit the model's context.
std::vector<SoftTarget> teacher_targets(const Model& model, const std::vector<int32_t>& context,
                                        const std::vector<int32_t>& tokens,
                                        const TeacherSettings& settings);

// The targets of each example, computed on first use and kept: the data and the context
// do not change during a run, so every epoch reuses them.
class TeacherCache {
 public:
  TeacherCache(const Model& model, TeacherSettings settings) : model_(model), settings_(settings) {}
  const std::vector<SoftTarget>& targets(size_t example, const std::vector<int32_t>& context,
                                         const std::vector<int32_t>& tokens);
  size_t size() const { return cache_.size(); }

 private:
  const Model& model_;
  TeacherSettings settings_;
  std::map<size_t, std::vector<SoftTarget>> cache_;
};

}  // namespace ph::trainer
