#include "encoder.h"

#include <algorithm>
#include <cmath>

namespace p_tuning {

Linear::Linear(const AddParameter& add, const std::string& name, int in, int out)
    : in_(in), out_(out) {
  const double bound = 1.0 / std::sqrt((double)in);  // PyTorch's default (fan_in)
  weight_ = &add(name + ".weight", {(size_t)out, (size_t)in}, bound);
  bias_ = &add(name + ".bias", {(size_t)out}, bound);
}

Matrix Linear::forward(const Matrix& x, int rows) const {
  const float* w = weight_->value.data();
  const float* b = bias_->value.data();
  Matrix y((size_t)rows * out_);
  for (int r = 0; r < rows; ++r) {
    const double* xr = &x[(size_t)r * in_];
    for (int o = 0; o < out_; ++o) {
      const float* wo = w + (size_t)o * in_;
      double s = b[o];
      for (int i = 0; i < in_; ++i) s += (double)wo[i] * xr[i];
      y[(size_t)r * out_ + o] = s;
    }
  }
  return y;
}

Matrix Linear::backward(const Matrix& x, const Matrix& grad_y, int rows) const {
  const float* w = weight_->value.data();
  float* gw = weight_->grad.data();
  float* gb = bias_->grad.data();
  Matrix gx((size_t)rows * in_, 0.0);
  std::vector<double> row_grad(in_);
  for (int o = 0; o < out_; ++o) {
    double sb = 0.0;
    std::fill(row_grad.begin(), row_grad.end(), 0.0);
    const float* wo = w + (size_t)o * in_;
    for (int r = 0; r < rows; ++r) {
      const double g = grad_y[(size_t)r * out_ + o];
      if (g == 0.0) continue;
      sb += g;
      const double* xr = &x[(size_t)r * in_];
      double* gxr = &gx[(size_t)r * in_];
      for (int i = 0; i < in_; ++i) {
        row_grad[i] += g * xr[i];
        gxr[i] += g * wo[i];
      }
    }
    gb[o] += (float)sb;
    float* gwo = gw + (size_t)o * in_;
    for (int i = 0; i < in_; ++i) gwo[i] += (float)row_grad[i];
  }
  return gx;
}

void relu_in_place(Matrix& x) {
  for (double& v : x) v = v > 0.0 ? v : 0.0;
}

void relu_backward_in_place(const Matrix& activation, Matrix& grad) {
  for (size_t i = 0; i < grad.size(); ++i)
    if (!(activation[i] > 0.0)) grad[i] = 0.0;
}

}  // namespace p_tuning
