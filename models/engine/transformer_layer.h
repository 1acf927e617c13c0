// One transformer block over the packed rows of a batch: forward, keeping what backward
// needs, and backward to the block's input. Pre-norm (llama, gpt2: x + attn(norm(x)),
// then h + mlp(norm(h))) or, with config.post_norm, post-norm (bert: norm(x + attn(x)),
// then norm(h + mlp(h))); both are made of the same attention and MLP sublayers.
//
// The rows form segments (one per sequence, plus at most one "shared" segment of
// virtual tokens the whole batch starts with). Every segment sees the external
// key/value spans of this layer (a learned prefix or a KV cache), segments flagged
// sees_shared also see the shared segment's keys, and then their own keys: causally, or
// all of them when the layout is not causal (encoders).
#pragma once

#include <vector>

#include <xtensor/xtensor.hpp>

#include "models/engine/adapter_attention.h"
#include "models/engine/attention.h"
#include "models/engine/kernels.h"
#include "models/engine/model.h"

namespace ph {

struct Segment {
  int row0 = 0;
  int len = 0;
  bool sees_shared = false;
};

struct BatchLayout {
  int rows = 0;
  int shared_rows = 0;            // rows [0, shared_rows) are the shared segment (if > 0)
  std::vector<Segment> segments;  // the shared segment first, when present
  std::vector<int> positions;     // per row
  bool causal = true;             // false: each row sees its whole segment (encoders)
  // A score bias by distance for every attention of the layers (ALiBi), covering every
  // distance among the positions in use and the external spans'; null: none.
  const DistanceBias* bias = nullptr;
};

// What backward needs from one layer's forward (or what recompute rebuilds), besides the
// layer's input. Kept across passes: buffers of an unchanged shape are reused, not
// reallocated.
struct LayerActivations {
  xt::xtensor<float, 1> mean1, rstd1;
  xt::xtensor<float, 2> qkv;   // [rows, qkv_dim]; q and k rotated (llama)
  xt::xtensor<float, 2> attn;  // attention output before the projection [rows, q_dim]
  xt::xtensor<float, 1> lse;   // per segment [n_heads, len], segments back to back
  xt::xtensor<float, 2> h;     // after the attention residual [rows, dim]
  xt::xtensor<float, 1> mean2, rstd2;
  xt::xtensor<float, 2> mlp_pre;  // llama [rows, 2*ffn] (gate|up), gpt2 [rows, ffn]
  // post-norm: the residual sums the norms take (h = norm(h_sum), y = norm(y_sum))
  xt::xtensor<float, 2> h_sum, y_sum;
  AdapterActivations adapter;  // an adapted layer's gated adapter attention
};

// Temporaries of one layer's forward or backward, shared by all layers of a pass (one
// layer runs at a time) and reused across passes.
struct LayerScratch {
  xt::xtensor<float, 2> normed, act;                       // forward
  xt::xtensor<float, 2> dact, dpre, dnormed, dattn, dqkv;  // backward
  xt::xtensor<float, 2> dsum;                              // post-norm backward
  xt::xtensor<float, 2> adapter_out;                       // the adapter branch's output
};

class TransformerLayer {
 public:
  TransformerLayer(const Model& model, int layer, const RopeTable& rope);

  // y = the block applied to x [rows, dim]; fills acts with what backward needs.
  // x and y may not alias. `adapter`: the layer's gated adapter attention, or null
  // (pre-norm layers only).
  void forward(const BatchLayout& layout, const std::vector<KVSpan>& external,
               const xt::xtensor<float, 2>& x, LayerActivations& acts, xt::xtensor<float, 2>& y,
               LayerScratch& scratch, const AdapterBranch* adapter = nullptr) const;
  // dx = d loss / d x from dy = d loss / d output; accumulates into the external spans'
  // dk/dv and the adapter's gradients. dx and dy may not alias.
  void backward(const BatchLayout& layout, const std::vector<KVSpan>& external,
                const xt::xtensor<float, 2>& x, const LayerActivations& acts,
                const xt::xtensor<float, 2>& dy, xt::xtensor<float, 2>& dx, LayerScratch& scratch,
                const AdapterBranch* adapter = nullptr) const;

 private:
  std::vector<AttentionSegment> attention_segments(const BatchLayout& layout,
                                                   const std::vector<KVSpan>& external,
                                                   const LayerActivations& acts, float* dqkv) const;
  AttentionShape shape_for(const BatchLayout& layout) const;

  void forward_pre_norm(const BatchLayout& layout, const std::vector<KVSpan>& external,
                        const xt::xtensor<float, 2>& x, LayerActivations& acts,
                        xt::xtensor<float, 2>& y, LayerScratch& scratch,
                        const AdapterBranch* adapter) const;
  void backward_pre_norm(const BatchLayout& layout, const std::vector<KVSpan>& external,
                         const xt::xtensor<float, 2>& x, const LayerActivations& acts,
                         const xt::xtensor<float, 2>& dy, xt::xtensor<float, 2>& dx,
                         LayerScratch& scratch, const AdapterBranch* adapter) const;
  void forward_post_norm(const BatchLayout& layout, const std::vector<KVSpan>& external,
                         const xt::xtensor<float, 2>& x, LayerActivations& acts,
                         xt::xtensor<float, 2>& y, LayerScratch& scratch) const;
  void backward_post_norm(const BatchLayout& layout, const std::vector<KVSpan>& external,
                          const xt::xtensor<float, 2>& x, const LayerActivations& acts,
                          const xt::xtensor<float, 2>& dy, xt::xtensor<float, 2>& dx,
                          LayerScratch& scratch) const;

  // The sublayers. Forward adds its output to `out` (which holds the residual); backward
  // writes (or, with accumulate, adds) d loss / d input from d loss / d output.
  void attention_sublayer(const BatchLayout& layout, const std::vector<KVSpan>& external,
                          const float* in, LayerActivations& acts, float* out,
                          LayerScratch& scratch, const AdapterBranch* adapter = nullptr) const;
  void attention_sublayer_backward(const BatchLayout& layout, const std::vector<KVSpan>& external,
                                   const LayerActivations& acts, const float* dout, float* din,
                                   bool accumulate, LayerScratch& scratch,
                                   const AdapterBranch* adapter = nullptr) const;
  void mlp_sublayer(int rows, const float* in, LayerActivations& acts, float* out,
                    LayerScratch& scratch) const;
  void mlp_sublayer_backward(int rows, const LayerActivations& acts, const float* dout, float* din,
                             bool accumulate, LayerScratch& scratch) const;

  const ModelConfig& config_;
  const LayerWeights& w_;
  const RopeTable& rope_;
  AttentionShape shape_;
};

}  // namespace ph
