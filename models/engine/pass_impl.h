// What TrainingPass (engine.h) forwards to: one implementation per kind of stack, each in
// its own file, chosen by the model's recipe (ModelConfig::stacks) in training_pass.cpp.
#pragma once

#include <memory>
#include <vector>

#include "models/engine/engine.h"

namespace ph {

class PassImpl {
 public:
  virtual ~PassImpl() = default;
  // As TrainingPass's members of the same names.
  virtual double forward(const std::vector<Sequence>& batch, const Injection& injection) = 0;
  virtual void backward(InjectionGrad& grad) = 0;
  virtual int scored_count() const = 0;
  virtual int loss_count() const { return scored_count(); }
  virtual double step_flops() const = 0;
  virtual const std::vector<double>& sequence_nll() const = 0;
  virtual const std::vector<int>& sequence_scored() const = 0;
  virtual const std::vector<xt::xtensor<float, 2>>& logits() const = 0;
};

// decoder_pass.cpp: decoder-only stacks (causal LMs).
std::unique_ptr<PassImpl> make_decoder_pass(const Model& model, PassOptions options);
// encoder_pass.cpp: encoder-only stacks (SEQ_CLS: bert, roberta).
std::unique_ptr<PassImpl> make_encoder_pass(const Model& model, PassOptions options);
// seq2seq_pass.cpp: encoder-decoder stacks (t5, SEQ_2_SEQ_LM).
std::unique_ptr<PassImpl> make_seq2seq_pass(const Model& model, PassOptions options);

}  // namespace ph
