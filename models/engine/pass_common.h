// Checks and views the passes (decoder_pass.cpp, encoder_pass.cpp, ...) share.
#pragma once

#include <string>
#include <vector>

#include "models/engine/adapter_attention.h"
#include "models/engine/attention.h"
#include "models/engine/engine.h"

namespace ph {

// The injection's shapes against the model: prefix [layers, 2, kv_heads, n, head_dim],
// virtual tokens [sets, n, dim], adapter prompts [adapted layers, len, dim] and gates
// (llama and gpt2 decoders only). Throws ph::Error naming what differs.
void check_injection_shapes(const ModelConfig& config, const Injection& injection);

// Every token of sequence `b` (`where` starts its messages) is a vocabulary id or a
// virtual slot of the injection, with per-example virtual tokens for this example when
// the injection has several sets.
void check_tokens(const ModelConfig& config, const Injection& injection,
                  const std::vector<int32_t>& tokens, size_t b, const std::string& where);

// Layer l's learned prefix (injection.prefix, may be empty) as the attention spans every
// query sees; with `grad`, its dk/dv point into grad's prefix of the same shape.
std::vector<KVSpan> prefix_spans(const ModelConfig& config, const xt::xtensor<float, 5>& prefix,
                                 int layer, xt::xtensor<float, 5>* grad);

// Per model layer, its gated adapter attention (len 0: not adapted): the top
// adapter_prompts.shape(0) layers take the injection's prompts and gates in order; with
// `grad`, their gradients point into grad's tensors of the same shapes.
std::vector<AdapterBranch> adapter_branches(const ModelConfig& config, const Injection& injection,
                                            InjectionGrad* grad);

}  // namespace ph
