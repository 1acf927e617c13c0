// One T5 block over the packed rows of a batch, forward beside backward: self-attention
// (bidirectional in the encoder, causal in the decoder) with the stack's relative
// position bias, in the decoder a cross-attention over the encoder's output (no position
// bias), then the feed-forward; each sub-layer is RMS-normed first and added back to the
// residual stream. No biases, no 1/sqrt(d) attention scale.
//
// Also T5's relative position buckets and the distance-bias table the attention kernel
// reads (attention.h).
#pragma once

#include <vector>

#include <xtensor/xtensor.hpp>

#include "models/engine/attention.h"
#include "models/engine/model.h"

namespace ph {

// transformers' _relative_position_bucket for d = key position - query position:
// bidirectional (encoder) uses half the buckets per direction; causal (decoder) only
// looks back (d > 0 falls in bucket 0). Distances up to half the (per-direction) buckets
// are exact, then logarithmic up to max_distance, then the last bucket.
int relative_bucket(int d, bool bidirectional, int buckets, int max_distance);

// The per-head bias of every distance between positions 0 .. positions-1, looked up from
// a stack's learned [buckets, heads] table.
struct RelativeBias {
  std::vector<float> table;  // [heads, 2 * positions - 1], distance -(positions-1) first
  DistanceBias bias;
  void build(const ModelConfig& c, const float* weights, bool bidirectional, int positions);
};

// One sequence's rows in a stack's packed batch; its rows sit at positions pos0, pos0+1, ...
struct StackSegment {
  int row0 = 0;
  int len = 0;
  int pos0 = 0;
};

struct StackLayout {
  int rows = 0;
  std::vector<StackSegment> segments;
  bool causal = false;                 // decoder self-attention
  const DistanceBias* bias = nullptr;  // relative position bias of the self-attention
};

// What backward needs from one block's forward, besides the block's input.
struct T5Activations {
  xt::xtensor<float, 1> rstd1, rstd_cross, rstd2;
  xt::xtensor<float, 2> qkv;    // self-attention [rows, qkv_dim]
  xt::xtensor<float, 2> attn;   // self-attention output before its projection [rows, q_dim]
  xt::xtensor<float, 1> lse;    // per segment [n_heads, len], segments back to back
  xt::xtensor<float, 2> h;      // after the self-attention residual
  xt::xtensor<float, 2> cross_q, cross_attn;  // decoder: cross-attention queries and output
  xt::xtensor<float, 1> cross_lse;
  xt::xtensor<float, 2> h_cross;  // decoder: after the cross-attention residual
  xt::xtensor<float, 2> mlp_pre;  // [rows, ffn] (relu) or [rows, 2 ffn] (gated)
};

struct T5Scratch {
  xt::xtensor<float, 2> normed, act, dact, dpre, dnormed, dattn, dqkv;
};

// Keys and values a block's attention sees besides the stack's own rows: the same
// `self` spans for every segment (a learned prefix at positions 0..n-1), and for the
// decoder's cross-attention one list per segment (that sequence's encoder output, and a
// cross-attention prefix if any). dk/dv set: backward accumulates into them.
struct BlockContext {
  std::vector<KVSpan> self;
  std::vector<std::vector<KVSpan>> cross;
};

class T5Block {
 public:
  // cross: the decoder block's cross-attention, or null (an encoder block).
  T5Block(const ModelConfig& config, const LayerWeights& weights,
          const CrossAttentionWeights* cross);

  // y = the block applied to x [rows, dim]; x and y may not alias.
  void forward(const StackLayout& layout, const BlockContext& context,
               const xt::xtensor<float, 2>& x, T5Activations& acts, xt::xtensor<float, 2>& y,
               T5Scratch& scratch) const;
  // dx = d loss / d x from dy; accumulates into the context spans' dk/dv.
  void backward(const StackLayout& layout, const BlockContext& context,
                const xt::xtensor<float, 2>& x, const T5Activations& acts,
                const xt::xtensor<float, 2>& dy, xt::xtensor<float, 2>& dx,
                T5Scratch& scratch) const;

 private:
  std::vector<AttentionSegment> self_segments(const StackLayout& layout,
                                              const BlockContext& context,
                                              const T5Activations& acts, float* dqkv) const;
  std::vector<AttentionSegment> cross_segments(const StackLayout& layout,
                                               const BlockContext& context,
                                               const T5Activations& acts, float* dq) const;

  const ModelConfig& config_;
  const LayerWeights& w_;
  const CrossAttentionWeights* cross_;
};

}  // namespace ph
