// Training by context distillation (Cartridges; ph_teacher_spec): the frozen model without
// the injection, seeing a context before the example, is the teacher; its top-k next-token
// probabilities become the example's soft targets (Sequence::soft_targets), which the
// engine's loss then matches (PEFT's examples/cartridge_self_study/train_distill.py).
#pragma once

#include <cstdint>
#include <map>
#include <vector>

#include "host/plugin/method_instance.h"
#include "host/trainer/dataset.h"
#include "host/trainer/task_encoding.h"
#include "models/engine/engine.h"
#include "models/tokenizer/tokenizer.h"

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
// context.size() + t - 1 (PEFT's example). With drop_first (the example's BOS when the
// context has its own), the teacher reads context ++ tokens[1:] as one text: token t's
// target is then its distribution at context.size() + t - 2. Throws ph::Error when they do
// not fit the model's context.
std::vector<SoftTarget> teacher_targets(const Model& model, const std::vector<int32_t>& context,
                                        const std::vector<int32_t>& tokens,
                                        const TeacherSettings& settings, bool drop_first = false);

// The targets of each example, computed on first use and kept: the data and the context
// do not change during a run, so every epoch reuses them.
class TeacherCache {
 public:
  TeacherCache(const Model& model, TeacherSettings settings) : model_(model), settings_(settings) {}
  const std::vector<SoftTarget>& targets(size_t example, const std::vector<int32_t>& context,
                                         const std::vector<int32_t>& tokens,
                                         bool drop_first = false);
  size_t size() const { return cache_.size(); }

 private:
  const Model& model_;
  TeacherSettings settings_;
  std::map<size_t, std::vector<SoftTarget>> cache_;
};

// A run's teacher: the method's spec, the tokenizer for the examples' own "context" field,
// and one cache per data set (0 training, 1 evaluation). The teacher reads the context and
// then the example as one text: the example's BOS is dropped when the context starts with
// its own.
class Distiller {
 public:
  Distiller(const Model& model, const Tokenizer* tokenizer,
            const host::MethodInstance::Teacher& teacher);
  // Sets seq.soft_targets: for every position of the example, or, when the teacher is
  // labeled_only, for the positions seq.labels scores (none if it has no labels). Throws
  // ph::Error naming the example when it has no context (its own or the method's), or
  // virtual tokens.
  void attach(int set, size_t index, const Example& example, const std::string& file,
              Sequence& seq);

 private:
  std::vector<int32_t> context_of(const Example& example, const std::string& where) const;

  const Model& model_;
  const Tokenizer* tokenizer_;
  std::vector<int32_t> context_;
  bool labeled_only_;
  TeacherCache caches_[2];
};

// The distillation loss of a data set with the method's injection (no dropout): PEFT's
// reduction over the whole set, the mean over examples of each one's mean.
double distillation_eval(const Model& model, host::MethodInstance& method, Distiller& distiller,
                         const std::vector<Example>& examples, const std::vector<Encoded>& encoded,
                         const std::string& file, int batch_size = 16);

}  // namespace ph::trainer
