#include "models/engine/transformer_layer.h"

#include <algorithm>

#include "models/engine/linear.h"

namespace ph {

TransformerLayer::TransformerLayer(const Model& model, int layer, const RopeTable& rope)
    : config_(model.config), w_(model.layers[layer]), rope_(rope) {
  shape_ = {config_.n_heads, config_.n_kv_heads, config_.head_dim, config_.attn_scale, nullptr};
}

AttentionShape TransformerLayer::shape_for(const BatchLayout& layout) const {
  AttentionShape shape = shape_;
  shape.bias = layout.bias;
  return shape;
}

// Builds each segment's view of this layer's keys and values. The qkv rows hold, per
// row, [q | k | v]; gradients (when dqkv is set) go to the same offsets of dqkv.
std::vector<AttentionSegment> TransformerLayer::attention_segments(
    const BatchLayout& layout, const std::vector<KVSpan>& external, const LayerActivations& acts,
    float* dqkv) const {
  const int hd = config_.head_dim, qd = config_.q_dim(), kvd = config_.kv_dim();
  const size_t stride = config_.qkv_dim();
  const float* qkv = acts.qkv.data();
  auto rows_span = [&](int row0, int n) {
    KVSpan s;
    s.pos0 = n > 0 ? layout.positions[row0] : 0;
    s.k = qkv + row0 * stride + qd;
    s.v = qkv + row0 * stride + qd + kvd;
    s.n = n;
    s.pos_stride = stride;
    s.head_stride = hd;
    if (dqkv) {
      s.dk = dqkv + row0 * stride + qd;
      s.dv = dqkv + row0 * stride + qd + kvd;
    }
    return s;
  };
  std::vector<AttentionSegment> segs;
  size_t lse_offset = 0;
  for (const Segment& sg : layout.segments) {
    AttentionSegment a;
    a.len = sg.len;
    a.q_pos0 = sg.len > 0 ? layout.positions[sg.row0] : 0;
    a.q = qkv + sg.row0 * stride;
    a.dq = dqkv ? dqkv + sg.row0 * stride : nullptr;
    a.q_stride = stride;
    a.context = external;
    if (sg.sees_shared) a.context.push_back(rows_span(0, layout.shared_rows));
    a.own = rows_span(sg.row0, sg.len);
    // forward writes the attention output; backward only reads it
    a.out = const_cast<float*>(acts.attn.data()) + (size_t)sg.row0 * qd;
    a.out_stride = qd;
    a.lse = const_cast<float*>(acts.lse.data()) + lse_offset;
    lse_offset += (size_t)config_.n_heads * sg.len;
    segs.push_back(std::move(a));
  }
  return segs;
}

void TransformerLayer::forward(const BatchLayout& layout, const std::vector<KVSpan>& external,
                               const xt::xtensor<float, 2>& x, LayerActivations& acts,
                               xt::xtensor<float, 2>& y, LayerScratch& scratch) const {
  const size_t R = layout.rows, D = config_.dim, F = config_.ffn_dim;
  const size_t qd = config_.q_dim(), qkvd = config_.qkv_dim();
  const bool layer_norm = config_.layer_norm();

  // attention: x -> norm -> [q|k|v] -> rotary -> attention -> projection, plus residual
  xt::xtensor<float, 2>& a = scratch.normed;
  a.resize({R, D});
  acts.rstd1.resize({R});
  if (layer_norm) acts.mean1.resize({R});
  norm_forward(w_.attn_norm, config_.norm_eps, R, D, x.data(), a.data(),
               layer_norm ? acts.mean1.data() : nullptr, acts.rstd1.data());
  acts.qkv.resize({R, qkvd});
  linear_forward(w_.qkv, R, a.data(), D, acts.qkv.data(), qkvd);
  if (config_.rotary_positions()) {
    rope_apply(rope_, R, layout.positions.data(), config_.n_heads, acts.qkv.data(), qkvd, false);
    rope_apply(rope_, R, layout.positions.data(), config_.n_kv_heads, acts.qkv.data() + qd, qkvd,
               false);
  }
  acts.attn.resize({R, qd});
  acts.lse.resize({R * config_.n_heads});
  attention_forward(shape_for(layout), attention_segments(layout, external, acts, nullptr));
  acts.h.resize({R, D});
  copy_floats(R * D, x.data(), acts.h.data());  // h = x + attn · W_o (+ b)
  linear_forward(w_.attn_out, R, acts.attn.data(), qd, acts.h.data(), D, true);

  // MLP: h -> norm -> up projection -> activation -> down projection, plus residual
  acts.rstd2.resize({R});
  if (layer_norm) acts.mean2.resize({R});
  norm_forward(w_.mlp_norm, config_.norm_eps, R, D, acts.h.data(), a.data(),
               layer_norm ? acts.mean2.data() : nullptr, acts.rstd2.data());
  const size_t pre_width = w_.mlp_in.out;
  acts.mlp_pre.resize({R, pre_width});
  linear_forward(w_.mlp_in, R, a.data(), D, acts.mlp_pre.data(), pre_width);
  xt::xtensor<float, 2>& act = scratch.act;
  act.resize({R, F});
  if (config_.gated_mlp)
    gated_forward(config_.activation, R, F, acts.mlp_pre.data(), act.data());
  else
    activation_forward(config_.activation, (long)(R * F), acts.mlp_pre.data(), act.data());
  y.resize({R, D});
  copy_floats(R * D, acts.h.data(), y.data());  // y = h + act · W_down (+ b)
  linear_forward(w_.mlp_out, R, act.data(), F, y.data(), D, true);
}

void TransformerLayer::backward(const BatchLayout& layout, const std::vector<KVSpan>& external,
                                const xt::xtensor<float, 2>& x, const LayerActivations& acts,
                                const xt::xtensor<float, 2>& dy, xt::xtensor<float, 2>& dx,
                                LayerScratch& scratch) const {
  const size_t R = layout.rows, D = config_.dim, F = config_.ffn_dim;
  const size_t qd = config_.q_dim(), qkvd = config_.qkv_dim();
  const bool layer_norm = config_.layer_norm();

  // MLP: dy -> d act -> d pre-activation -> d normed -> d h (plus the residual's dy).
  // dx holds d h until the attention's share is added to it.
  xt::xtensor<float, 2>& dact = scratch.dact;
  dact.resize({R, F});
  linear_backward_input(w_.mlp_out, R, dy.data(), D, dact.data(), F, false);
  const size_t pre_width = w_.mlp_in.out;
  xt::xtensor<float, 2>& dpre = scratch.dpre;
  dpre.resize({R, pre_width});
  if (config_.gated_mlp)
    gated_backward(config_.activation, R, F, acts.mlp_pre.data(), dact.data(), dpre.data());
  else
    activation_backward(config_.activation, (long)(R * F), acts.mlp_pre.data(), dact.data(),
                        dpre.data());
  xt::xtensor<float, 2>& dnormed = scratch.dnormed;
  dnormed.resize({R, D});
  linear_backward_input(w_.mlp_in, R, dpre.data(), pre_width, dnormed.data(), D, false);
  xt::xtensor<float, 2>& dh = dx;
  dh.resize({R, D});
  copy_floats(R * D, dy.data(), dh.data());
  norm_backward(w_.mlp_norm, R, D, acts.h.data(), layer_norm ? acts.mean2.data() : nullptr,
                acts.rstd2.data(), dnormed.data(), dh.data(), true);

  // attention: dh -> d attention output -> d [q|k|v] -> undo rotary -> d normed -> dx
  xt::xtensor<float, 2>& dattn = scratch.dattn;
  dattn.resize({R, qd});
  linear_backward_input(w_.attn_out, R, dh.data(), D, dattn.data(), qd, false);
  xt::xtensor<float, 2>& dqkv = scratch.dqkv;
  dqkv.resize({R, qkvd});
  std::fill(dqkv.begin(), dqkv.end(), 0.0f);
  auto segs = attention_segments(layout, external, acts, dqkv.data());
  for (auto& seg : segs) seg.dout = dattn.data() + (seg.out - acts.attn.data());  // same rows
  attention_backward(shape_for(layout), segs);
  if (config_.rotary_positions()) {
    rope_apply(rope_, R, layout.positions.data(), config_.n_heads, dqkv.data(), qkvd, true);
    rope_apply(rope_, R, layout.positions.data(), config_.n_kv_heads, dqkv.data() + qd, qkvd, true);
  }
  linear_backward_input(w_.qkv, R, dqkv.data(), qkvd, dnormed.data(), D, false);
  norm_backward(w_.attn_norm, R, D, x.data(), layer_norm ? acts.mean1.data() : nullptr,
                acts.rstd1.data(), dnormed.data(), dx.data(), true);
}

}  // namespace ph
