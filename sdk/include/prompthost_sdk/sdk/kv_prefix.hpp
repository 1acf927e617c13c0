// PEFT's flat key/value prefix, shared by the prefix methods (prefix tuning, cartridges):
// a [n, L*2*kv_heads*head_dim] table whose row j holds position j's keys and values for
// every layer, laid out as [2L, kv_heads, head_dim] row-major (block 2l: layer l's keys,
// block 2l+1: its values). The host's prefix tensor (PH_INJECT_PREFIX, and what
// ph.host.model's prefix_from_ids fills) is [L, 2, kv_heads, n, head_dim]. Header-only;
// part of the SDK, not of the ABI.
#pragma once

#include <cstddef>
#include <string>

#include "prompthost_sdk/plugin_abi.h"
#include "prompthost_sdk/sdk/errors.hpp"
#include "prompthost_sdk/sdk/tensor.hpp"

namespace ph::sdk {

class FlatKvPrefix {
 public:
  FlatKvPrefix() = default;
  FlatKvPrefix(int layers, int kv_heads, int positions, int head_dim)
      : layers_(layers), kv_heads_(kv_heads), n_(positions), head_dim_(head_dim) {}

  int positions() const { return n_; }
  // The length of a flat row: L * 2 * kv_heads * head_dim.
  size_t flat_dim() const { return (size_t)layers_ * 2 * kv_heads_ * head_dim_; }
  // Where layer l's keys (kv 0) or values (kv 1) of kv head g start in a flat row.
  size_t column(int l, int kv, int g) const {
    return ((size_t)(2 * l + kv) * kv_heads_ + g) * head_dim_;
  }

  // Throws Error(PH_ERR_INVALID_ARGUMENT) naming `what` unless `t` is a float32
  // [L, 2, kv_heads, n, head_dim] tensor.
  void check_prefix(const DLTensor& t, const char* what) const {
    const int64_t want[5] = {layers_, 2, kv_heads_, n_, head_dim_};
    bool ok = t.ndim == 5 && is_float32(t);
    for (int i = 0; ok && i < 5; ++i) ok = t.shape[i] == want[i];
    if (!ok)
      throw Error(PH_ERR_INVALID_ARGUMENT,
                  std::string(what) + " is " + shape_string(t) + ", expected float32 [" +
                      std::to_string(layers_) + ", 2, " + std::to_string(kv_heads_) + ", " +
                      std::to_string(n_) + ", " + std::to_string(head_dim_) + "]");
  }

  // prefix = the n flat rows at `flat`, unflattened.
  void unflatten(const float* flat, DLTensor& prefix) const {
    check_prefix(prefix, "prefix");
    auto out = view<float, 5>(prefix);
    for (int l = 0; l < layers_; ++l)
      for (int kv = 0; kv < 2; ++kv)
        for (int g = 0; g < kv_heads_; ++g)
          for (int j = 0; j < n_; ++j) {
            const float* src = flat + (size_t)j * flat_dim() + column(l, kv, g);
            for (int i = 0; i < head_dim_; ++i) out(l, kv, g, j, i) = src[i];
          }
  }

  // The inverse: the n flat rows at `flat` = `prefix` flattened.
  void flatten(const DLTensor& prefix, float* flat) const {
    check_prefix(prefix, "prefix");
    const auto src = view<const float, 5>(prefix);
    for (int l = 0; l < layers_; ++l)
      for (int kv = 0; kv < 2; ++kv)
        for (int g = 0; g < kv_heads_; ++g)
          for (int j = 0; j < n_; ++j) {
            float* dst = flat + (size_t)j * flat_dim() + column(l, kv, g);
            for (int i = 0; i < head_dim_; ++i) dst[i] = src(l, kv, g, j, i);
          }
  }

  // The backward of unflatten for rows first_row..n-1: adds their part of
  // grad_prefix to `grad`, whose row 0 is flat row first_row (rows before it are
  // frozen and get nothing).
  void add_flat_grad(const DLTensor& grad_prefix, float* grad, int first_row = 0) const {
    check_prefix(grad_prefix, "grad_prefix");
    const auto g = view<const float, 5>(grad_prefix);
    for (int l = 0; l < layers_; ++l)
      for (int kv = 0; kv < 2; ++kv)
        for (int h = 0; h < kv_heads_; ++h)
          for (int j = first_row; j < n_; ++j) {
            float* dst = grad + (size_t)(j - first_row) * flat_dim() + column(l, kv, h);
            for (int i = 0; i < head_dim_; ++i) dst[i] += g(l, kv, h, j, i);
          }
  }

 private:
  int layers_ = 0, kv_heads_ = 0, n_ = 0, head_dim_ = 0;
};

}  // namespace ph::sdk
