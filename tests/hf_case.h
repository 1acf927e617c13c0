// One case of the Hugging Face fixtures (tests/fixtures/hf/README.md) as the engine's
// batch and injection, fed as PEFT feeds it for the case's task type:
//   - prompt-like methods: virtual slots 0..n-1 before the real tokens (of the encoder for
//     SEQ_2_SEQ_LM); multitask on SEQ_2_SEQ_LM also puts slots n..2n-1 before the decoder's
//     tokens (unscored);
//   - prefix tuning: the flat prefix [n, L*2*token_dim] as the engine's [L, 2, heads, n,
//     head_dim] with the adapter config's token_dim and heads;
//   - SEQ_CLS: the class of each row, token types (slots get type 0), and the trained head
//     (the param.* PEFT names modules_to_save) as the injection's head.
// Right padding and the decoder's unscored tail are dropped (not computed on).
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "models/engine/engine.h"
#include "models/loader/safetensors.h"
#include "test_support.h"

namespace ph::test {

inline std::vector<float> floats(const SafetensorsFile& f, const std::string& name) {
  const FloatTensor t = f.to_float(name);
  return std::vector<float>(t.data, t.data + t.numel);
}

struct HfCase {
  std::string method, task_type;
  nlohmann::json config;  // the adapter_config.json PEFT wrote
  std::vector<Sequence> batch;
  Injection injection;
  std::vector<int64_t> task_ids;
  double loss = 0.0;
  std::vector<float> logits;       // the compared rows, in batch order
  std::vector<size_t> logit_rows;  // per sequence: its compared rows
  std::vector<float> grad_injection;
  std::vector<std::pair<std::string, std::vector<float>>> head_grads;
  int prefix_heads = 0, prefix_head_dim = 0, prefix_layers = 0;

  bool prefix() const { return method == "prefix_tuning"; }

  // An injection (or its gradient) in the fixtures' layout: the flat prefix, or the
  // virtual tokens as stored.
  std::vector<float> flat(const xt::xtensor<float, 3>& virtual_tokens,
                          const xt::xtensor<float, 5>& prefix) const {
    if (this->prefix()) return prefix_to_flat(prefix);
    return std::vector<float>(virtual_tokens.begin(), virtual_tokens.end());
  }
  std::vector<float> flat_injection(const Injection& inj) const {
    return flat(inj.virtual_tokens, inj.prefix);
  }
  std::vector<float> flat_injection_grad(const InjectionGrad& g) const {
    return flat(g.virtual_tokens, g.prefix);
  }
  // expect.grad_injection shaped like `like` (a plugin's injection).
  InjectionGrad injection_grad_from_reference(const Injection& like) const {
    InjectionGrad g;
    if (prefix()) {
      g.prefix = prefix_from_flat(grad_injection.data(), (int)like.prefix.shape(3), prefix_layers,
                                  prefix_heads, prefix_head_dim);
    } else {
      g.virtual_tokens = xt::zeros<float>(like.virtual_tokens.shape());
      if (g.virtual_tokens.size() == grad_injection.size())
        std::copy(grad_injection.begin(), grad_injection.end(), g.virtual_tokens.begin());
    }
    return g;
  }
};

inline HfCase read_hf_case(const SafetensorsFile& f) {
  HfCase c;
  const auto& meta = f.metadata();
  c.method = meta.at("method");
  c.task_type = meta.at("task_type");
  c.config = nlohmann::json::parse(meta.at("config"));
  const auto peft_names = nlohmann::json::parse(meta.at("peft_names"));
  const int n = c.config.at("num_virtual_tokens").get<int>();
  const bool seq2seq = c.task_type == "SEQ_2_SEQ_LM", cls = c.task_type == "SEQ_CLS";
  const bool multitask = c.method == "multitask_prompt_tuning";

  const auto ids = f.to_int64("input.input_ids");
  const auto mask = f.to_int64("input.attention_mask");
  const auto labels = f.to_int64("input.labels");
  const int B = (int)f.info("input.input_ids").shape[0];
  const int S = (int)f.info("input.input_ids").shape[1];
  std::vector<int64_t> types, decoder_ids;
  if (f.find("input.token_type_ids")) types = f.to_int64("input.token_type_ids");
  if (f.find("input.task_ids")) c.task_ids = f.to_int64("input.task_ids");
  if (seq2seq) decoder_ids = f.to_int64("expect.decoder_input_ids");
  const int T = seq2seq ? (int)f.info("input.labels").shape[1] : 0;

  // the injection
  const FloatTensor inj = f.to_float("expect.injection");
  if (c.prefix()) {
    const int token_dim = c.config.at("token_dim").get<int>();
    c.prefix_layers = c.config.at("num_layers").get<int>();
    c.prefix_heads = c.config.at("num_attention_heads").get<int>();
    c.prefix_head_dim = token_dim / c.prefix_heads;
    c.injection.prefix =
        prefix_from_flat(inj.data, n, c.prefix_layers, c.prefix_heads, c.prefix_head_dim);
  } else {
    const bool per_example = inj.shape.size() == 3;
    const size_t sets = per_example ? inj.shape[0] : 1, rows = inj.shape[per_example ? 1 : 0];
    c.injection.virtual_tokens = xt::zeros<float>({sets, rows, (size_t)inj.shape.back()});
    std::copy_n(inj.data, inj.numel, c.injection.virtual_tokens.data());
  }
  // the head PEFT trains through modules_to_save
  for (const auto& [name, peft_name] : peft_names.items()) {
    if (peft_name.get<std::string>().find("modules_to_save") == std::string::npos) continue;
    const FloatTensor p = f.to_float("param." + name);
    std::vector<size_t> shape(p.shape.begin(), p.shape.end());
    xt::xarray<float> t = xt::zeros<float>(shape);
    std::copy_n(p.data, p.numel, t.data());
    c.injection.head[name] = t;
    c.head_grads.emplace_back(name, floats(f, "expect.grad." + name));
  }

  const std::vector<float> all_logits = floats(f, "expect.logits");
  const size_t width = f.info("expect.logits").shape.back();
  for (int b = 0; b < B; ++b) {
    Sequence s;
    if (!c.prefix())
      for (int k = 0; k < n; ++k) {
        s.tokens.push_back(virtual_slot(k));
        if (!seq2seq && !cls) s.labels.push_back(kIgnoreLabel);
        if (!types.empty()) s.token_types.push_back(0);
      }
    int len = 0;
    for (int t = 0; t < S; ++t) {
      if (!mask[b * S + t]) continue;  // right padding: not computed at all
      s.tokens.push_back((int32_t)ids[b * S + t]);
      if (!seq2seq && !cls) s.labels.push_back((int32_t)labels[b * S + t]);
      if (!types.empty()) s.token_types.push_back((int32_t)types[b * S + t]);
      ++len;
    }
    size_t rows = 0, first = 0;
    if (seq2seq) {
      if (multitask)
        for (int k = 0; k < n; ++k) {
          s.decoder_tokens.push_back(virtual_slot(n + k));
          s.decoder_labels.push_back(kIgnoreLabel);
        }
      int scored = 0;  // the labels end in -100 on the shorter rows: dropped
      while (scored < T && labels[b * T + scored] != kIgnoreLabel) ++scored;
      for (int t = 0; t < scored; ++t) {
        s.decoder_tokens.push_back((int32_t)decoder_ids[b * T + t]);
        s.decoder_labels.push_back((int32_t)labels[b * T + t]);
      }
      rows = scored;
      first = (size_t)b * T;
    } else if (cls) {
      s.class_label = (int32_t)labels[b];
      rows = 1;
      first = b;
    } else {
      rows = len;
      first = (size_t)b * S;
    }
    c.logit_rows.push_back(rows);
    c.logits.insert(c.logits.end(), all_logits.begin() + first * width,
                    all_logits.begin() + (first + rows) * width);
    c.batch.push_back(std::move(s));
  }
  c.loss = f.to_float("expect.loss").data[0];
  c.grad_injection = floats(f, "expect.grad_injection");
  return c;
}

}  // namespace ph::test
