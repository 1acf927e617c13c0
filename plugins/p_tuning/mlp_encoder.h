// PEFT's MLP reparameterisation: mlp_head = Linear(dim, h) ReLU Linear(h, h) ReLU
// Linear(h, dim), applied to each virtual token on its own (parameters mlp_head.{0,2,4}).
#pragma once

#include "encoder.h"

namespace p_tuning {

class MlpEncoder : public Encoder {
 public:
  MlpEncoder(const AddParameter& add, int dim, int hidden);
  std::unique_ptr<Tape> make_tape() const override;
  Matrix forward(const Matrix& x, int rows, bool train, int64_t step, Tape* tape) const override;
  Matrix backward(const Tape& tape, const Matrix& grad_out, int rows) const override;

 private:
  Linear l0_, l2_, l4_;
};

}  // namespace p_tuning
