// What the P-tuning encoders share: the interface the method drives, and a Linear layer
// (PyTorch layout: weight [out, in], bias [out]). Activations are row-major double
// matrices [rows, width]; parameters are the method's float32 tensors.
#pragma once

#include <prompthost_sdk/sdk.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace p_tuning {

using Parameter = ph::sdk::Method::Parameter;
using Matrix = std::vector<double>;  // row-major

// Registers a trainable parameter under `name`, initialised U(-bound, bound) from a
// random stream of its own.
using AddParameter = std::function<Parameter&(const std::string& name,
                                              const std::vector<size_t>& shape, double bound)>;

// Fills `count` U[0, 1) draws of random stream `stream` (the host's random service).
using DrawUniform = std::function<void(uint64_t stream, size_t count, float* out)>;

// What one forward kept for its backward (each encoder has its own kind).
struct Tape {
  virtual ~Tape() = default;
};

// Maps the n virtual-token embeddings [n, dim] to the prompt [n, dim].
class Encoder {
 public:
  virtual ~Encoder() = default;
  virtual std::unique_ptr<Tape> make_tape() const = 0;
  // `train` turns dropout on (its masks keyed by `step`); `tape`, when given, receives
  // what backward needs.
  virtual Matrix forward(const Matrix& x, int rows, bool train, int64_t step, Tape* tape) const = 0;
  // Adds d loss / d parameters to their gradients and returns d loss / d x, given
  // d loss / d output and the tape of that forward.
  virtual Matrix backward(const Tape& tape, const Matrix& grad_out, int rows) const = 0;
};

// y = x W^T + b.
class Linear {
 public:
  Linear(const AddParameter& add, const std::string& name, int in, int out);
  int in() const { return in_; }
  int out() const { return out_; }
  Matrix forward(const Matrix& x, int rows) const;
  // Accumulates into weight/bias grads; returns d loss / d x.
  Matrix backward(const Matrix& x, const Matrix& grad_y, int rows) const;

 private:
  int in_, out_;
  Parameter* weight_;
  Parameter* bias_;
};

void relu_in_place(Matrix& x);
// grad *= (activation > 0), where activation is ReLU's output.
void relu_backward_in_place(const Matrix& activation, Matrix& grad);

}  // namespace p_tuning
