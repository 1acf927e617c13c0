// The threaded entry points of the decoding kernels (engine/isa/decode_bodies.cpp):
// products over the rows of a decoding step, and attention of each row over its own
// sequence's cache. A row's results are bit-identical whatever the other rows and the
// thread count (for a given instruction set, isa.h): the bodies fix every sum's order,
// and the threads only split the output columns (products) or the (row, head) pairs
// (attention).
#pragma once

#include <cstddef>
#include <vector>

#include "models/engine/attention.h"
#include "models/engine/model.h"

namespace ph {

// y[rows, lin.out] (= or, with accumulate, +=) x[rows, lin.in] · Wᵀ + b, for either weight
// layout (Linear::in_major). Leading dimensions are row strides. Returns the
// floating-point operations (2 per multiply-add).
double decode_linear(const Linear& lin, int rows, const float* x, int ldx, float* y, int ldy,
                     bool accumulate);

// One query row's view of its sequence's keys and values for one layer: the cache's
// [kv_heads, capacity, head_dim] tensors, of which positions 0..n-1 are visible (the
// row's own position is n-1; its key and value are already in the cache).
struct DecodeAttentionRow {
  const float* q = nullptr;  // [n_heads * head_dim]
  const float* keys = nullptr;
  const float* values = nullptr;
  size_t head_stride = 0;  // capacity * head_dim
  int n = 0;
  float* out = nullptr;  // [n_heads * head_dim]
};

// Every row's attention (shape.bias: ALiBi by distance, or null). Returns the
// floating-point operations of its products (q·k and p·v).
double decode_attention(const AttentionShape& shape, const std::vector<DecodeAttentionRow>& rows);

}  // namespace ph
