// Multi-head attention with grouped-query heads over the packed segments of a batch, each
// segment seeing zero or more fully visible key/value contexts (a learned prefix, the
// virtual tokens the batch shares, a KV cache, an encoder's output) before its own keys,
// causally (decoders) or all of them (encoders). A position bias by distance (ALiBi, T5's
// relative buckets) may be added to the scores.
//
// Scores, probabilities and their gradients are formed one (segment, head) at a time
// with small single-threaded GEMMs, and those units are spread over the engine's
// threads. Backward recomputes the probabilities from the saved log-sum-exp instead of
// keeping them (memory stays linear in the sequence length).
#pragma once

#include <cstddef>
#include <vector>

namespace ph {

// A score bias that depends on the head and on the distance d = key position - query
// position: bias = table[h * head_stride + center + d]. The caller sizes the table so that
// every distance of the call is inside it. (ALiBi's slope · key position equals slope · d
// up to a per-query constant, which the softmax ignores.)
struct DistanceBias {
  const float* table = nullptr;
  int center = 0;
  size_t head_stride = 0;
};

struct AttentionShape {
  int n_heads = 0;
  int n_kv_heads = 0;
  int head_dim = 0;
  float scale = 0.0f;                // 0: 1/sqrt(head_dim)
  const DistanceBias* bias = nullptr;  // null: none
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
  int pos0 = 0;  // position of key 0 (keys are consecutive), for the distance bias
};

struct AttentionSegment {
  int len = 0;  // queries (and own keys)
  int q_pos0 = 0;  // position of query 0 (queries are consecutive), for the distance bias
  // Own keys: query t sees own keys 0..t (causal) or all of them (an encoder). own.n is
  // len, or 0 for cross-attention (contexts only).
  bool causal = true;
  // Query t of head h at q + t*q_stride + h*head_dim; dq likewise (backward).
  const float* q = nullptr;
  float* dq = nullptr;
  size_t q_stride = 0;
  // Every position visible to every query. Several segments may share a context span
  // (and its dk/dv): backward sums their contributions in segment order.
  std::vector<KVSpan> context;
  KVSpan own;  // own keys (own.n == len, or 0); never shared with another segment
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
