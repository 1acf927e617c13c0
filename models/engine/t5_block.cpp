#include "models/engine/t5_block.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "models/engine/kernels.h"
#include "models/engine/linear.h"

namespace ph {

int relative_bucket(int d, bool bidirectional, int buckets, int max_distance) {
  int bucket = 0;
  int n;  // a non-negative distance
  if (bidirectional) {
    buckets /= 2;
    if (d > 0) bucket += buckets;
    n = std::abs(d);
  } else {
    n = d < 0 ? -d : 0;
  }
  const int max_exact = buckets / 2;
  if (n < max_exact) return bucket + n;
  // In float32, as transformers computes it (the bucket of a distance must not move).
  const float log_ratio = std::log((float)n / (float)max_exact) /
                          (float)std::log((double)max_distance / max_exact) *
                          (float)(buckets - max_exact);
  const int large = max_exact + (int)log_ratio;
  return bucket + std::min(large, buckets - 1);
}

void RelativeBias::build(const ModelConfig& c, const float* weights, bool bidirectional,
                         int positions) {
  const int H = c.n_heads, width = 2 * positions - 1, center = positions - 1;
  table.resize((size_t)H * width);
  for (int d = -center; d <= center; ++d) {
    const int b = relative_bucket(d, bidirectional, c.relative_buckets, c.relative_max_distance);
    for (int h = 0; h < H; ++h) table[(size_t)h * width + center + d] = weights[(size_t)b * H + h];
  }
  bias = DistanceBias{table.data(), center, (size_t)width};
}

T5Block::T5Block(const ModelConfig& config, const LayerWeights& weights,
                 const CrossAttentionWeights* cross)
    : config_(config), w_(weights), cross_(cross) {}

// Each segment: queries and own keys are its rows of [q | k | v]; every segment also
// sees the context's self spans (positioned by their own pos0).
std::vector<AttentionSegment> T5Block::self_segments(const StackLayout& layout,
                                                     const BlockContext& context,
                                                     const T5Activations& acts,
                                                     float* dqkv) const {
  const size_t qd = config_.q_dim(), kvd = config_.kv_dim(), stride = config_.qkv_dim();
  float* qkv = const_cast<float*>(acts.qkv.data());  // forward writes only out and lse
  std::vector<AttentionSegment> segs;
  size_t lse_offset = 0;
  for (const StackSegment& sg : layout.segments) {
    AttentionSegment a;
    a.len = sg.len;
    a.q_pos0 = sg.pos0;
    a.causal = layout.causal;
    a.q = qkv + sg.row0 * stride;
    a.dq = dqkv ? dqkv + sg.row0 * stride : nullptr;
    a.q_stride = stride;
    a.context = context.self;
    a.own.k = qkv + sg.row0 * stride + qd;
    a.own.v = qkv + sg.row0 * stride + qd + kvd;
    a.own.n = sg.len;
    a.own.pos_stride = stride;
    a.own.head_stride = config_.head_dim;
    a.own.pos0 = sg.pos0;
    if (dqkv) {
      a.own.dk = dqkv + sg.row0 * stride + qd;
      a.own.dv = dqkv + sg.row0 * stride + qd + kvd;
    }
    a.out = const_cast<float*>(acts.attn.data()) + sg.row0 * qd;
    a.out_stride = qd;
    a.lse = const_cast<float*>(acts.lse.data()) + lse_offset;
    lse_offset += (size_t)config_.n_heads * sg.len;
    segs.push_back(std::move(a));
  }
  return segs;
}

// Each segment's queries see only its context.cross spans (no own keys, no bias).
std::vector<AttentionSegment> T5Block::cross_segments(const StackLayout& layout,
                                                      const BlockContext& context,
                                                      const T5Activations& acts,
                                                      float* dq) const {
  const size_t qd = config_.q_dim();
  std::vector<AttentionSegment> segs;
  size_t lse_offset = 0;
  for (size_t s = 0; s < layout.segments.size(); ++s) {
    const StackSegment& sg = layout.segments[s];
    AttentionSegment a;
    a.len = sg.len;
    a.causal = false;
    a.q = acts.cross_q.data() + sg.row0 * qd;
    a.dq = dq ? dq + sg.row0 * qd : nullptr;
    a.q_stride = qd;
    a.context = context.cross.at(s);
    a.out = const_cast<float*>(acts.cross_attn.data()) + sg.row0 * qd;
    a.out_stride = qd;
    a.lse = const_cast<float*>(acts.cross_lse.data()) + lse_offset;
    lse_offset += (size_t)config_.n_heads * sg.len;
    segs.push_back(std::move(a));
  }
  return segs;
}

void T5Block::forward(const StackLayout& layout, const BlockContext& context,
                      const xt::xtensor<float, 2>& x, T5Activations& acts,
                      xt::xtensor<float, 2>& y, T5Scratch& scratch) const {
  const ModelConfig& c = config_;
  const size_t R = layout.rows, D = c.dim, F = c.ffn_dim, qd = c.q_dim(), H = c.n_heads;
  const AttentionShape self_shape{c.n_heads, c.n_kv_heads, c.head_dim, c.attn_scale, layout.bias};
  xt::xtensor<float, 2>& a = scratch.normed;
  a.resize({R, D});

  // self-attention: h = x + attention(norm(x)) · W_o
  acts.rstd1.resize({R});
  norm_forward(w_.attn_norm, c.norm_eps, R, D, x.data(), a.data(), nullptr, acts.rstd1.data());
  acts.qkv.resize({R, (size_t)c.qkv_dim()});
  linear_forward(w_.qkv, R, a.data(), D, acts.qkv.data(), c.qkv_dim());
  acts.attn.resize({R, qd});
  acts.lse.resize({R * H});
  attention_forward(self_shape, self_segments(layout, context, acts, nullptr));
  acts.h.resize({R, D});
  copy_floats(R * D, x.data(), acts.h.data());
  linear_forward(w_.attn_out, R, acts.attn.data(), qd, acts.h.data(), D, true);
  const xt::xtensor<float, 2>* res = &acts.h;

  // cross-attention: h_cross = h + attention(norm(h) · W_q, encoder K/V) · W_o
  if (cross_) {
    const AttentionShape cross_shape{c.n_heads, c.n_kv_heads, c.head_dim, c.attn_scale, nullptr};
    acts.rstd_cross.resize({R});
    norm_forward(cross_->norm, c.norm_eps, R, D, acts.h.data(), a.data(), nullptr,
                 acts.rstd_cross.data());
    acts.cross_q.resize({R, qd});
    linear_forward(cross_->q, R, a.data(), D, acts.cross_q.data(), qd);
    acts.cross_attn.resize({R, qd});
    acts.cross_lse.resize({R * H});
    attention_forward(cross_shape, cross_segments(layout, context, acts, nullptr));
    acts.h_cross.resize({R, D});
    copy_floats(R * D, acts.h.data(), acts.h_cross.data());
    linear_forward(cross_->out, R, acts.cross_attn.data(), qd, acts.h_cross.data(), D, true);
    res = &acts.h_cross;
  }

  // feed-forward: y = res + f(norm(res) · W_i) · W_o (gated: f(gate) * up)
  acts.rstd2.resize({R});
  norm_forward(w_.mlp_norm, c.norm_eps, R, D, res->data(), a.data(), nullptr, acts.rstd2.data());
  const size_t pre_width = w_.mlp_in.out;
  acts.mlp_pre.resize({R, pre_width});
  linear_forward(w_.mlp_in, R, a.data(), D, acts.mlp_pre.data(), pre_width);
  xt::xtensor<float, 2>& act = scratch.act;
  act.resize({R, F});
  if (c.gated_mlp)
    gated_forward(c.activation, R, F, acts.mlp_pre.data(), act.data());
  else
    activation_forward(c.activation, (long)(R * F), acts.mlp_pre.data(), act.data());
  y.resize({R, D});
  copy_floats(R * D, res->data(), y.data());
  linear_forward(w_.mlp_out, R, act.data(), F, y.data(), D, true);
}

// dx is the running residual gradient: d res, then d h, then d x, each sub-layer's
// input gradient added to it in place.
void T5Block::backward(const StackLayout& layout, const BlockContext& context,
                       const xt::xtensor<float, 2>& x, const T5Activations& acts,
                       const xt::xtensor<float, 2>& dy, xt::xtensor<float, 2>& dx,
                       T5Scratch& scratch) const {
  const ModelConfig& c = config_;
  const size_t R = layout.rows, D = c.dim, F = c.ffn_dim, qd = c.q_dim(), qkvd = c.qkv_dim();
  const AttentionShape self_shape{c.n_heads, c.n_kv_heads, c.head_dim, c.attn_scale, layout.bias};
  xt::xtensor<float, 2>& dnormed = scratch.dnormed;
  dnormed.resize({R, D});

  // feed-forward
  xt::xtensor<float, 2>& dact = scratch.dact;
  dact.resize({R, F});
  linear_backward_input(w_.mlp_out, R, dy.data(), D, dact.data(), F, false);
  const size_t pre_width = w_.mlp_in.out;
  xt::xtensor<float, 2>& dpre = scratch.dpre;
  dpre.resize({R, pre_width});
  if (c.gated_mlp)
    gated_backward(c.activation, R, F, acts.mlp_pre.data(), dact.data(), dpre.data());
  else
    activation_backward(c.activation, (long)(R * F), acts.mlp_pre.data(), dact.data(),
                        dpre.data());
  linear_backward_input(w_.mlp_in, R, dpre.data(), pre_width, dnormed.data(), D, false);
  dx.resize({R, D});
  copy_floats(R * D, dy.data(), dx.data());
  const xt::xtensor<float, 2>& res = cross_ ? acts.h_cross : acts.h;
  norm_backward(w_.mlp_norm, R, D, res.data(), nullptr, acts.rstd2.data(), dnormed.data(),
                dx.data(), true);

  xt::xtensor<float, 2>& dattn = scratch.dattn;
  dattn.resize({R, qd});
  if (cross_) {
    const AttentionShape cross_shape{c.n_heads, c.n_kv_heads, c.head_dim, c.attn_scale, nullptr};
    linear_backward_input(cross_->out, R, dx.data(), D, dattn.data(), qd, false);
    xt::xtensor<float, 2>& dq = scratch.dqkv;
    dq.resize({R, qd});
    std::fill(dq.begin(), dq.end(), 0.0f);
    auto segs = cross_segments(layout, context, acts, dq.data());
    for (auto& seg : segs) seg.dout = dattn.data() + (seg.out - acts.cross_attn.data());
    attention_backward(cross_shape, segs);
    linear_backward_input(cross_->q, R, dq.data(), qd, dnormed.data(), D, false);
    norm_backward(cross_->norm, R, D, acts.h.data(), nullptr, acts.rstd_cross.data(),
                  dnormed.data(), dx.data(), true);
  }

  // self-attention
  linear_backward_input(w_.attn_out, R, dx.data(), D, dattn.data(), qd, false);
  xt::xtensor<float, 2>& dqkv = scratch.dqkv;
  dqkv.resize({R, qkvd});
  std::fill(dqkv.begin(), dqkv.end(), 0.0f);
  auto segs = self_segments(layout, context, acts, dqkv.data());
  for (auto& seg : segs) seg.dout = dattn.data() + (seg.out - acts.attn.data());
  attention_backward(self_shape, segs);
  linear_backward_input(w_.qkv, R, dqkv.data(), qkvd, dnormed.data(), D, false);
  norm_backward(w_.attn_norm, R, D, x.data(), nullptr, acts.rstd1.data(), dnormed.data(),
                dx.data(), true);
}

}  // namespace ph
