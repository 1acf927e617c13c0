// LLaMA-Adapter's gated adapter attention (PEFT's ADAPTION_PROMPT, Zhang et al. 2023) in
// one adapted layer of a causal decoder: the layer's queries also attend, in a softmax of
// their own, to `len` learned prompt rows P projected by the layer's own key and value
// weights, and a raw per-layer gate scales what they read:
//   Kp|Vp = P · W_kv (+ bias)            no norm, no rotary embedding
//   A_h   = gate · softmax(q_h Kp_gᵀ / sqrt(head_dim)) Vp_g   (g = the head's kv group)
//   llama: out += o_proj(A);  gpt2: out += A (after c_proj, not through it)
// The queries are the layer's own (rotated, on llama), at the tokens' real positions.
// The softmax has no mask: every query sees every prompt row.
#pragma once

#include <xtensor/xtensor.hpp>

#include "models/engine/model.h"

namespace ph {

// One adapted layer's prompt [len, dim] and gate; the gradients (when set) are added to.
struct AdapterBranch {
  const float* prompt = nullptr;
  int len = 0;
  float gate = 0.0f;
  float* d_prompt = nullptr;  // [len, dim]
  float* d_gate = nullptr;    // [1]
};

// What backward needs from the branch's forward.
struct AdapterActivations {
  xt::xtensor<float, 2> kv;     // [len, qkv_dim]: P through the layer's q|k|v projection
  xt::xtensor<float, 2> probs;  // [rows, n_heads * len]: per head, the softmax over P
  xt::xtensor<float, 2> mixed;  // [rows, q_dim]: probs · Vp, before the gate
};

// Whether the branch's output goes through the layer's output projection (llama) or is
// added after it (gpt2).
bool adapter_through_output(const ModelConfig& config);

// acts.kv = the prompt through the layer's q|k|v projection (with its bias).
void adapter_project(const ModelConfig& config, const LayerWeights& w, const AdapterBranch& branch,
                     AdapterActivations& acts);

// out[rows, dim] += the branch's output for queries q (row r's heads at q + r*q_stride),
// given kv (adapter_project's [len, qkv_dim]); fills acts.probs and acts.mixed (acts.kv is
// not read). `branch_out` is a scratch [rows, q_dim].
void adapter_forward(const ModelConfig& config, const LayerWeights& w, const AdapterBranch& branch,
                     const float* kv, int rows, const float* q, size_t q_stride,
                     AdapterActivations& acts, xt::xtensor<float, 2>& branch_out, float* out);

// From dout [rows, dim] (d loss / d the sublayer's output): adds d loss / d q to dq (row
// stride dq_stride), and to branch.d_prompt and branch.d_gate.
void adapter_backward(const ModelConfig& config, const LayerWeights& w, const AdapterBranch& branch,
                      int rows, const float* q, size_t q_stride, const AdapterActivations& acts,
                      const float* dout, float* dq, size_t dq_stride);

}  // namespace ph
