// Causal multi-head attention with grouped-query heads over the packed segments of a
// batch, each segment seeing zero or more fully visible key/value contexts (a learned
// prefix, the virtual tokens the batch shares, a KV cache) before its own causal keys.
//
// Scores, probabilities and their gradients are formed one (segment, head) at a time
// with small single-threaded GEMMs, and those units are spread over the engine's
// threads. Backward recomputes the probabilities from the saved log-sum-exp instead of
// keeping them (memory stays linear in the sequence length).
#pragma once

#include <cstddef>
#include <vector>

namespace ph {

struct AttentionShape {
  int n_heads = 0;
  int n_kv_heads = 0;
  int head_dim = 0;
};

// Keys and values of `n` positions: key j of kv head g is at k + g*head_stride +
// j*pos_stride (values likewise). dk/dv, when set, receive accumulated gradients at the
// same offsets; null means "no gradient wanted" (a frozen KV cache).
struct KVSpan {
  const float* k = nullptr;
  const float* v = nullptr;
  int n = 0;
  size_t pos_stride = 0;
  size_t head_stride = 0;
  float* dk = nullptr;
  float* dv = nullptr;
};

struct AttentionSegment {
  int len = 0;  // queries (and own keys)
  // Query t of head h at q + t*q_stride + h*head_dim; dq likewise (backward).
  const float* q = nullptr;
  float* dq = nullptr;
  size_t q_stride = 0;
  // Every position visible to every query. Several segments may share a context span
  // (and its dk/dv): backward sums their contributions in segment order.
  std::vector<KVSpan> context;
  KVSpan own;  // own keys: query t sees positions 0..t (own.n == len); never shared
  // Output of head h for query t at out + t*out_stride + h*head_dim; dout likewise.
  float* out = nullptr;
  const float* dout = nullptr;
  size_t out_stride = 0;
  float* lse = nullptr;  // [n_heads, len] log-sum-exp of the scaled scores, kept for backward
};

void attention_forward(const AttentionShape& shape, const std::vector<AttentionSegment>& segs);
// Accumulates into every segment's dq, and into dk/dv of every span that has them. Needs
// out and lse from forward. Deterministic whatever the thread count.
void attention_backward(const AttentionShape& shape, const std::vector<AttentionSegment>& segs);

}  // namespace ph
