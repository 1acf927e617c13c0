// PEFT's LSTM reparameterisation: a bidirectional multi-layer LSTM (PyTorch's, gate order
// i, f, g, o; bias_ih + bias_hh; dropout on every layer's output but the last, in
// training only) over the n virtual tokens, then mlp_head = Linear(2h, 2h) ReLU
// Linear(2h, dim). Parameters lstm_head.{weight,bias}_{ih,hh}_l{k}[_reverse] and
// mlp_head.{0,2}.{weight,bias}.
#pragma once

#include <array>

#include "encoder.h"

namespace p_tuning {

class LstmEncoder : public Encoder {
 public:
  LstmEncoder(const AddParameter& add, DrawUniform draw, int dim, int hidden, int layers,
              double dropout);
  std::unique_ptr<Tape> make_tape() const override;
  Matrix forward(const Matrix& x, int rows, bool train, int64_t step, Tape* tape) const override;
  Matrix backward(const Tape& tape, const Matrix& grad_out, int rows) const override;

  // One direction of one layer.
  struct Direction {
    int in = 0;
    Parameter* w_ih = nullptr;  // [4h, in]
    Parameter* w_hh = nullptr;  // [4h, h]
    Parameter* b_ih = nullptr;  // [4h]
    Parameter* b_hh = nullptr;  // [4h]
  };
  // What one direction's forward kept.
  struct DirectionTape {
    Matrix gates;   // [T, 4h] activated: sigmoid(i), sigmoid(f), tanh(g), sigmoid(o)
    Matrix c;       // [T, h] cell state
    Matrix tanh_c;  // [T, h]
    Matrix h;       // [T, h] hidden state
  };

 private:
  // Runs one direction over `x` [T, in]; writes its hidden states into columns
  // [reverse*h, reverse*h + h) of `out` [T, 2h].
  void run(const Direction& d, bool reverse, const Matrix& x, int rows, Matrix& out,
           DirectionTape& tape) const;
  // Backward of run: adds to the parameters' grads and to `grad_x` [T, in].
  void run_backward(const Direction& d, bool reverse, const Matrix& x, const DirectionTape& tape,
                    const Matrix& grad_out, int rows, Matrix& grad_x) const;

  DrawUniform draw_;
  int hidden_;
  double dropout_;
  std::vector<std::array<Direction, 2>> layers_;
  Linear head0_, head2_;
};

}  // namespace p_tuning
