#include "mlp_encoder.h"

namespace p_tuning {

namespace {

struct MlpTape : Tape {
  Matrix x, a0, a2;  // the input and the two ReLU outputs
};

}  // namespace

MlpEncoder::MlpEncoder(const AddParameter& add, int dim, int hidden)
    : l0_(add, "mlp_head.0", dim, hidden),
      l2_(add, "mlp_head.2", hidden, hidden),
      l4_(add, "mlp_head.4", hidden, dim) {}

std::unique_ptr<Tape> MlpEncoder::make_tape() const {
  return std::make_unique<MlpTape>();
}

Matrix MlpEncoder::forward(const Matrix& x, int rows, bool, int64_t, Tape* tape) const {
  Matrix a0 = l0_.forward(x, rows);
  relu_in_place(a0);
  Matrix a2 = l2_.forward(a0, rows);
  relu_in_place(a2);
  Matrix out = l4_.forward(a2, rows);
  if (tape) {
    auto& t = static_cast<MlpTape&>(*tape);
    t.x = x;
    t.a0 = std::move(a0);
    t.a2 = std::move(a2);
  }
  return out;
}

Matrix MlpEncoder::backward(const Tape& tape, const Matrix& grad_out, int rows) const {
  const auto& t = static_cast<const MlpTape&>(tape);
  Matrix g = l4_.backward(t.a2, grad_out, rows);
  relu_backward_in_place(t.a2, g);
  g = l2_.backward(t.a0, g, rows);
  relu_backward_in_place(t.a0, g);
  return l0_.backward(t.x, g, rows);
}

}  // namespace p_tuning
