#include "models/engine/transformer_layer.h"

#include <algorithm>

#include "models/common/error.h"
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
    a.causal = layout.causal;
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
                               xt::xtensor<float, 2>& y, LayerScratch& scratch,
                               const AdapterBranch* adapter) const {
  if (adapter && config_.post_norm)
    throw Error("the gated adapter attention needs a pre-norm decoder (llama, gpt2)");
  if (config_.post_norm)
    forward_post_norm(layout, external, x, acts, y, scratch);
  else
    forward_pre_norm(layout, external, x, acts, y, scratch, adapter);
}

void TransformerLayer::backward(const BatchLayout& layout, const std::vector<KVSpan>& external,
                                const xt::xtensor<float, 2>& x, const LayerActivations& acts,
                                const xt::xtensor<float, 2>& dy, xt::xtensor<float, 2>& dx,
                                LayerScratch& scratch, const AdapterBranch* adapter) const {
  if (config_.post_norm)
    backward_post_norm(layout, external, x, acts, dy, dx, scratch);
  else
    backward_pre_norm(layout, external, x, acts, dy, dx, scratch, adapter);
}

// ---------------------------------------------------------------- the two block orders

// h = x + attn(norm1(x)); y = h + mlp(norm2(h))
void TransformerLayer::forward_pre_norm(const BatchLayout& layout,
                                        const std::vector<KVSpan>& external,
                                        const xt::xtensor<float, 2>& x, LayerActivations& acts,
                                        xt::xtensor<float, 2>& y, LayerScratch& scratch,
                                        const AdapterBranch* adapter) const {
  const size_t R = layout.rows, D = config_.dim;
  const bool layer_norm = config_.layer_norm();
  xt::xtensor<float, 2>& a = scratch.normed;
  a.resize({R, D});
  acts.rstd1.resize({R});
  if (layer_norm) acts.mean1.resize({R});
  norm_forward(w_.attn_norm, config_.norm_eps, R, D, x.data(), a.data(),
               layer_norm ? acts.mean1.data() : nullptr, acts.rstd1.data());
  acts.h.resize({R, D});
  copy_floats(R * D, x.data(), acts.h.data());
  attention_sublayer(layout, external, a.data(), acts, acts.h.data(), scratch, adapter);

  acts.rstd2.resize({R});
  if (layer_norm) acts.mean2.resize({R});
  norm_forward(w_.mlp_norm, config_.norm_eps, R, D, acts.h.data(), a.data(),
               layer_norm ? acts.mean2.data() : nullptr, acts.rstd2.data());
  y.resize({R, D});
  copy_floats(R * D, acts.h.data(), y.data());
  mlp_sublayer(R, a.data(), acts, y.data(), scratch);
}

void TransformerLayer::backward_pre_norm(const BatchLayout& layout,
                                         const std::vector<KVSpan>& external,
                                         const xt::xtensor<float, 2>& x,
                                         const LayerActivations& acts,
                                         const xt::xtensor<float, 2>& dy, xt::xtensor<float, 2>& dx,
                                         LayerScratch& scratch,
                                         const AdapterBranch* adapter) const {
  const size_t R = layout.rows, D = config_.dim;
  const bool layer_norm = config_.layer_norm();
  // dx holds d h (dy plus the MLP's share) until the attention's share is added to it
  xt::xtensor<float, 2>& dnormed = scratch.dnormed;
  dnormed.resize({R, D});
  mlp_sublayer_backward(R, acts, dy.data(), dnormed.data(), false, scratch);
  dx.resize({R, D});
  copy_floats(R * D, dy.data(), dx.data());
  norm_backward(w_.mlp_norm, R, D, acts.h.data(), layer_norm ? acts.mean2.data() : nullptr,
                acts.rstd2.data(), dnormed.data(), dx.data(), true);

  attention_sublayer_backward(layout, external, acts, dx.data(), dnormed.data(), false, scratch,
                              adapter);
  norm_backward(w_.attn_norm, R, D, x.data(), layer_norm ? acts.mean1.data() : nullptr,
                acts.rstd1.data(), dnormed.data(), dx.data(), true);
}

// h = norm1(x + attn(x)); y = norm2(h + mlp(h))
void TransformerLayer::forward_post_norm(const BatchLayout& layout,
                                         const std::vector<KVSpan>& external,
                                         const xt::xtensor<float, 2>& x, LayerActivations& acts,
                                         xt::xtensor<float, 2>& y, LayerScratch& scratch) const {
  const size_t R = layout.rows, D = config_.dim;
  const bool layer_norm = config_.layer_norm();
  if (layer_norm) {
    acts.mean1.resize({R});
    acts.mean2.resize({R});
  }
  acts.h_sum.resize({R, D});
  copy_floats(R * D, x.data(), acts.h_sum.data());
  attention_sublayer(layout, external, x.data(), acts, acts.h_sum.data(), scratch);
  acts.h.resize({R, D});
  acts.rstd1.resize({R});
  norm_forward(w_.attn_norm, config_.norm_eps, R, D, acts.h_sum.data(), acts.h.data(),
               layer_norm ? acts.mean1.data() : nullptr, acts.rstd1.data());

  acts.y_sum.resize({R, D});
  copy_floats(R * D, acts.h.data(), acts.y_sum.data());
  mlp_sublayer(R, acts.h.data(), acts, acts.y_sum.data(), scratch);
  y.resize({R, D});
  acts.rstd2.resize({R});
  norm_forward(w_.mlp_norm, config_.norm_eps, R, D, acts.y_sum.data(), y.data(),
               layer_norm ? acts.mean2.data() : nullptr, acts.rstd2.data());
}

void TransformerLayer::backward_post_norm(const BatchLayout& layout,
                                          const std::vector<KVSpan>& external,
                                          const xt::xtensor<float, 2>&,
                                          const LayerActivations& acts,
                                          const xt::xtensor<float, 2>& dy,
                                          xt::xtensor<float, 2>& dx, LayerScratch& scratch) const {
  const size_t R = layout.rows, D = config_.dim;
  const bool layer_norm = config_.layer_norm();
  xt::xtensor<float, 2>& dsum = scratch.dsum;
  dsum.resize({R, D});
  dx.resize({R, D});
  // y_sum = h + mlp(h): d h = d y_sum + the MLP's share (in dx for now)
  norm_backward(w_.mlp_norm, R, D, acts.y_sum.data(), layer_norm ? acts.mean2.data() : nullptr,
                acts.rstd2.data(), dy.data(), dsum.data(), false);
  copy_floats(R * D, dsum.data(), dx.data());
  mlp_sublayer_backward(R, acts, dsum.data(), dx.data(), true, scratch);
  // h_sum = x + attn(x): d x = d h_sum + the attention's share
  norm_backward(w_.attn_norm, R, D, acts.h_sum.data(), layer_norm ? acts.mean1.data() : nullptr,
                acts.rstd1.data(), dx.data(), dsum.data(), false);
  copy_floats(R * D, dsum.data(), dx.data());
  attention_sublayer_backward(layout, external, acts, dsum.data(), dx.data(), true, scratch);
}

// ---------------------------------------------------------------- the sublayers

// out += attention(q, k, v of `in`) · W_o (+ b): [q|k|v] -> rotary -> attention -> projection
void TransformerLayer::attention_sublayer(const BatchLayout& layout,
                                          const std::vector<KVSpan>& external, const float* in,
                                          LayerActivations& acts, float* out,
                                          LayerScratch& scratch,
                                          const AdapterBranch* adapter) const {
  const size_t R = layout.rows, D = config_.dim;
  const size_t qd = config_.q_dim(), qkvd = config_.qkv_dim();
  acts.qkv.resize({R, qkvd});
  linear_forward(w_.qkv, R, in, D, acts.qkv.data(), qkvd);
  if (config_.rotary_positions()) {
    rope_apply(rope_, R, layout.positions.data(), config_.n_heads, acts.qkv.data(), qkvd, false);
    rope_apply(rope_, R, layout.positions.data(), config_.n_kv_heads, acts.qkv.data() + qd, qkvd,
               false);
  }
  acts.attn.resize({R, qd});
  acts.lse.resize({R * config_.n_heads});
  attention_forward(shape_for(layout), attention_segments(layout, external, acts, nullptr));
  linear_forward(w_.attn_out, R, acts.attn.data(), qd, out, D, true);
  if (adapter) {  // reads the rotated queries, adds its own output
    adapter_project(config_, w_, *adapter, acts.adapter);
    adapter_forward(config_, w_, *adapter, acts.adapter.kv.data(), R, acts.qkv.data(), qkvd,
                    acts.adapter, scratch.adapter_out, out);
  }
}

// d out -> d attention output -> d [q|k|v] -> undo rotary -> d in
void TransformerLayer::attention_sublayer_backward(const BatchLayout& layout,
                                                   const std::vector<KVSpan>& external,
                                                   const LayerActivations& acts, const float* dout,
                                                   float* din, bool accumulate,
                                                   LayerScratch& scratch,
                                                   const AdapterBranch* adapter) const {
  const size_t R = layout.rows, D = config_.dim;
  const size_t qd = config_.q_dim(), qkvd = config_.qkv_dim();
  xt::xtensor<float, 2>& dattn = scratch.dattn;
  dattn.resize({R, qd});
  linear_backward_input(w_.attn_out, R, dout, D, dattn.data(), qd, false);
  xt::xtensor<float, 2>& dqkv = scratch.dqkv;
  dqkv.resize({R, qkvd});
  std::fill(dqkv.begin(), dqkv.end(), 0.0f);
  auto segs = attention_segments(layout, external, acts, dqkv.data());
  for (auto& seg : segs) seg.dout = dattn.data() + (seg.out - acts.attn.data());  // same rows
  attention_backward(shape_for(layout), segs);
  if (adapter)  // its share of d q, before the rotation is undone
    adapter_backward(config_, w_, *adapter, R, acts.qkv.data(), qkvd, acts.adapter, dout,
                     dqkv.data(), qkvd);
  if (config_.rotary_positions()) {
    rope_apply(rope_, R, layout.positions.data(), config_.n_heads, dqkv.data(), qkvd, true);
    rope_apply(rope_, R, layout.positions.data(), config_.n_kv_heads, dqkv.data() + qd, qkvd, true);
  }
  linear_backward_input(w_.qkv, R, dqkv.data(), qkvd, din, D, accumulate);
}

// out += f(in · W_in (+ b)) · W_out (+ b), f gated over [gate | up] or plain
void TransformerLayer::mlp_sublayer(int rows, const float* in, LayerActivations& acts, float* out,
                                    LayerScratch& scratch) const {
  const size_t R = rows, D = config_.dim, F = config_.ffn_dim;
  const size_t pre_width = w_.mlp_in.out;
  acts.mlp_pre.resize({R, pre_width});
  linear_forward(w_.mlp_in, R, in, D, acts.mlp_pre.data(), pre_width);
  xt::xtensor<float, 2>& act = scratch.act;
  act.resize({R, F});
  if (config_.gated_mlp)
    gated_forward(config_.activation, R, F, acts.mlp_pre.data(), act.data());
  else
    activation_forward(config_.activation, (long)(R * F), acts.mlp_pre.data(), act.data());
  linear_forward(w_.mlp_out, R, act.data(), F, out, D, true);
}

// d out -> d act -> d pre-activation -> d in
void TransformerLayer::mlp_sublayer_backward(int rows, const LayerActivations& acts,
                                             const float* dout, float* din, bool accumulate,
                                             LayerScratch& scratch) const {
  const size_t R = rows, D = config_.dim, F = config_.ffn_dim;
  xt::xtensor<float, 2>& dact = scratch.dact;
  dact.resize({R, F});
  linear_backward_input(w_.mlp_out, R, dout, D, dact.data(), F, false);
  const size_t pre_width = w_.mlp_in.out;
  xt::xtensor<float, 2>& dpre = scratch.dpre;
  dpre.resize({R, pre_width});
  if (config_.gated_mlp)
    gated_backward(config_.activation, R, F, acts.mlp_pre.data(), dact.data(), dpre.data());
  else
    activation_backward(config_.activation, (long)(R * F), acts.mlp_pre.data(), dact.data(),
                        dpre.data());
  linear_backward_input(w_.mlp_in, R, dpre.data(), pre_width, din, D, accumulate);
}

}  // namespace ph
