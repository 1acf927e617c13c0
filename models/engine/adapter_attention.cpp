#include "models/engine/adapter_attention.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "models/engine/kernels.h"
#include "models/engine/linear.h"

namespace ph {

namespace {

// Where head h's kv group starts in a row of acts.kv, for keys and for values.
struct KvColumns {
  int heads, group, hd, len, qd, kvd, qkvd;
  explicit KvColumns(const ModelConfig& c, int len)
      : heads(c.n_heads),
        group(c.n_heads / c.n_kv_heads),
        hd(c.head_dim),
        len(len),
        qd(c.q_dim()),
        kvd(c.kv_dim()),
        qkvd(c.qkv_dim()) {}
  int key(int h) const { return qd + (h / group) * hd; }
  int value(int h) const { return qd + kvd + (h / group) * hd; }
};

float adapter_scale(const ModelConfig& c) {
  return 1.0f / std::sqrt((float)c.head_dim);  // GPT-2's own scaling options do not apply
}

}  // namespace

bool adapter_through_output(const ModelConfig& config) {
  return config.adapter_join == AdapterJoin::kThroughOutput;
}

void adapter_project(const ModelConfig& c, const LayerWeights& w, const AdapterBranch& branch,
                     AdapterActivations& acts) {
  acts.kv.resize({(size_t)branch.len, (size_t)c.qkv_dim()});
  linear_forward(w.qkv, branch.len, branch.prompt, c.dim, acts.kv.data(), c.qkv_dim());
}

void adapter_forward(const ModelConfig& c, const LayerWeights& w, const AdapterBranch& branch,
                     const float* kv, int rows, const float* q, size_t q_stride,
                     AdapterActivations& acts, xt::xtensor<float, 2>& branch_out, float* out) {
  const KvColumns k(c, branch.len);
  const int P = k.heads * k.len;  // row width of probs
  acts.probs.resize({(size_t)rows, (size_t)P});
  acts.mixed.resize({(size_t)rows, (size_t)k.qd});
  for (int h = 0; h < k.heads; ++h)
    gemm(false, true, rows, k.len, k.hd, adapter_scale(c), q + h * k.hd, (int)q_stride,
         kv + k.key(h), k.qkvd, 0.0f, &acts.probs(0, h * k.len), P);
  for (int r = 0; r < rows; ++r)
    for (int h = 0; h < k.heads; ++h) softmax_inplace(k.len, &acts.probs(r, h * k.len));
  for (int h = 0; h < k.heads; ++h)
    gemm(false, false, rows, k.hd, k.len, 1.0f, &acts.probs(0, h * k.len), P, kv + k.value(h),
         k.qkvd, 0.0f, &acts.mixed(0, h * k.hd), k.qd);
  branch_out.resize({(size_t)rows, (size_t)k.qd});
  for (size_t i = 0; i < branch_out.size(); ++i)
    branch_out.data()[i] = branch.gate * acts.mixed.data()[i];
  if (adapter_through_output(c)) {
    linear_forward(w.attn_out, rows, branch_out.data(), k.qd, out, c.dim, true);
  } else {  // gpt2: q_dim == dim
    for (size_t i = 0; i < branch_out.size(); ++i) out[i] += branch_out.data()[i];
  }
}

// With U = probs · Vp, A = gate · U and upstream dA:
//   dgate = Σ dA ⊙ U,  dU = gate · dA,  dVp = probsᵀ dU,  dprobs = dU Vpᵀ,
//   dS = probs ⊙ (dprobs − rowsum(probs ⊙ dprobs)),  dq = scale dS Kp,  dKp = scale dSᵀ q,
// then dP = [0 | dKp | dVp] · W_qkv.
void adapter_backward(const ModelConfig& c, const LayerWeights& w, const AdapterBranch& branch,
                      int rows, const float* q, size_t q_stride, const AdapterActivations& acts,
                      const float* dout, float* dq, size_t dq_stride) {
  const KvColumns k(c, branch.len);
  const int P = k.heads * k.len;
  const float* kv = acts.kv.data();
  const float scale = adapter_scale(c);
  xt::xtensor<float, 2> dmixed = xt::empty<float>({(size_t)rows, (size_t)k.qd});
  if (adapter_through_output(c))
    linear_backward_input(w.attn_out, rows, dout, c.dim, dmixed.data(), k.qd, false);
  else
    std::copy_n(dout, dmixed.size(), dmixed.data());
  double dgate = 0.0;
  for (size_t i = 0; i < dmixed.size(); ++i) {
    dgate += (double)dmixed.data()[i] * acts.mixed.data()[i];
    dmixed.data()[i] *= branch.gate;
  }
  if (branch.d_gate) *branch.d_gate += (float)dgate;

  xt::xtensor<float, 2> dkv = xt::zeros<float>({(size_t)k.len, (size_t)k.qkvd});
  xt::xtensor<float, 2> ds = xt::empty<float>({(size_t)rows, (size_t)P});
  for (int h = 0; h < k.heads; ++h) {
    gemm(false, true, rows, k.len, k.hd, 1.0f, &dmixed(0, h * k.hd), k.qd, kv + k.value(h), k.qkvd,
         0.0f, &ds(0, h * k.len), P);
    gemm(true, false, k.len, k.hd, rows, 1.0f, &acts.probs(0, h * k.len), P, &dmixed(0, h * k.hd),
         k.qd, 1.0f, dkv.data() + k.value(h), k.qkvd);
  }
  for (int r = 0; r < rows; ++r)
    for (int h = 0; h < k.heads; ++h) {
      const float* p = &acts.probs(r, h * k.len);
      float* d = &ds(r, h * k.len);
      double dot = 0.0;
      for (int j = 0; j < k.len; ++j) dot += (double)p[j] * d[j];
      for (int j = 0; j < k.len; ++j) d[j] = p[j] * (d[j] - (float)dot);
    }
  for (int h = 0; h < k.heads; ++h) {
    gemm(false, false, rows, k.hd, k.len, scale, &ds(0, h * k.len), P, kv + k.key(h), k.qkvd, 1.0f,
         dq + h * k.hd, (int)dq_stride);
    gemm(true, false, k.len, k.hd, rows, scale, &ds(0, h * k.len), P, q + h * k.hd, (int)q_stride,
         1.0f, dkv.data() + k.key(h), k.qkvd);
  }
  if (branch.d_prompt)
    linear_backward_input(w.qkv, k.len, dkv.data(), k.qkvd, branch.d_prompt, c.dim, true);
}

}  // namespace ph
