#include "models/engine/pass_common.h"

#include "models/common/error.h"

namespace ph {

namespace {

// LLaMA-Adapter's prompts [adapter_layers, len, dim] and gates [adapter_layers], on the
// families PEFT's ADAPTION_PROMPT supports.
void check_adapter_shapes(const ModelConfig& c, const Injection& inj) {
  const auto& p = inj.adapter_prompts;
  if (p.size() == 0 && inj.adapter_gates.size() == 0) return;
  if (c.stacks != Stacks::kDecoder || c.adapter_join == AdapterJoin::kNone)
    throw Error(std::string("injection: adapter prompts (LLaMA-Adapter) need a llama or gpt2 "
                            "causal decoder, not a ") +
                arch_name(c.arch) + " model");
  if (p.shape(0) < 1 || p.shape(0) > (size_t)c.n_layers || p.shape(1) < 1 ||
      p.shape(2) != (size_t)c.dim)
    throw Error("injection: adapter prompts have shape [" + std::to_string(p.shape(0)) + ", " +
                std::to_string(p.shape(1)) + ", " + std::to_string(p.shape(2)) +
                "], the model needs [1.." + std::to_string(c.n_layers) + ", len >= 1, " +
                std::to_string(c.dim) + "]");
  if (inj.adapter_gates.size() != p.shape(0))
    throw Error("injection: " + std::to_string(inj.adapter_gates.size()) + " adapter gates for " +
                std::to_string(p.shape(0)) + " adapted layers");
}

}  // namespace

void check_injection_shapes(const ModelConfig& c, const Injection& inj) {
  check_adapter_shapes(c, inj);
  const auto& pre = inj.prefix;
  if (pre.size() > 0 &&
      (pre.shape(0) != (size_t)c.n_layers || pre.shape(1) != 2 ||
       pre.shape(2) != (size_t)c.n_kv_heads || pre.shape(4) != (size_t)c.head_dim))
    throw Error("injection: key/value prefix has shape [" + std::to_string(pre.shape(0)) + ", " +
                std::to_string(pre.shape(1)) + ", " + std::to_string(pre.shape(2)) + ", n, " +
                std::to_string(pre.shape(4)) + "], the model needs [" + std::to_string(c.n_layers) +
                ", 2, " + std::to_string(c.n_kv_heads) + ", n, " + std::to_string(c.head_dim) +
                "]");
  if (inj.virtual_tokens.size() > 0 && inj.virtual_tokens.shape(2) != (size_t)c.dim)
    throw Error("injection: virtual tokens have width " +
                std::to_string(inj.virtual_tokens.shape(2)) + ", the model's hidden size is " +
                std::to_string(c.dim));
}

void check_tokens(const ModelConfig& c, const Injection& inj, const std::vector<int32_t>& tokens,
                  size_t b, const std::string& where) {
  const size_t sets = inj.virtual_tokens.shape(0);
  const int n_virtual = inj.virtual_tokens.size() ? (int)inj.virtual_tokens.shape(1) : 0;
  for (size_t t = 0; t < tokens.size(); ++t) {
    const int32_t tok = tokens[t];
    if (is_virtual(tok)) {
      if (virtual_index(tok) >= n_virtual)
        throw Error(where + "virtual slot " + std::to_string(virtual_index(tok)) + " at position " +
                    std::to_string(t) + ", but the injection has " + std::to_string(n_virtual) +
                    " virtual tokens");
      if (sets > 1 && b >= sets)
        throw Error(where + "no per-example virtual tokens for this example (the injection has " +
                    std::to_string(sets) + " sets)");
    } else if (tok >= c.vocab_size) {
      throw Error(where + "token id " + std::to_string(tok) + " at position " + std::to_string(t) +
                  " is outside the vocabulary of " + std::to_string(c.vocab_size));
    }
  }
}

std::vector<KVSpan> prefix_spans(const ModelConfig& c, const xt::xtensor<float, 5>& prefix, int l,
                                 xt::xtensor<float, 5>* grad) {
  std::vector<KVSpan> spans;
  const int n = prefix.size() ? (int)prefix.shape(3) : 0;
  if (n == 0) return spans;
  KVSpan s;
  s.k = &prefix(l, 0, 0, 0, 0);
  s.v = &prefix(l, 1, 0, 0, 0);
  s.n = n;
  s.pos_stride = c.head_dim;
  s.head_stride = (size_t)n * c.head_dim;
  if (grad) {
    s.dk = &(*grad)(l, 0, 0, 0, 0);
    s.dv = &(*grad)(l, 1, 0, 0, 0);
  }
  spans.push_back(s);
  return spans;
}

std::vector<AdapterBranch> adapter_branches(const ModelConfig& c, const Injection& inj,
                                            InjectionGrad* grad) {
  std::vector<AdapterBranch> branches(c.n_layers);
  const int adapted = inj.adapter_prompts.size() ? (int)inj.adapter_prompts.shape(0) : 0;
  for (int i = 0; i < adapted; ++i) {
    AdapterBranch& b = branches[c.n_layers - adapted + i];
    b.prompt = &inj.adapter_prompts(i, 0, 0);
    b.len = (int)inj.adapter_prompts.shape(1);
    b.gate = inj.adapter_gates(i);
    if (grad) {
      b.d_prompt = &grad->adapter_prompts(i, 0, 0);
      b.d_gate = &grad->adapter_gates(i);
    }
  }
  return branches;
}

}  // namespace ph
