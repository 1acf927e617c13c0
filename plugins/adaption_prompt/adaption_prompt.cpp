// LLaMA-Adapter (Zhang et al. 2023) with Hugging Face PEFT's ADAPTION_PROMPT options and
// layout (tests/fixtures/family/README.md §4): adapter_len learned prompt rows and one raw,
// zero-initialised gate in each of the top adapter_layers attention layers; the host's
// engine runs the gated adapter attention (ph_injection_spec.adapter_len/adapter_layers,
// ABI 1.2). Llama-family and GPT-2 causal LMs.
//
// Parameters, under PEFT's full names (which are also its checkpoint keys), per adapted
// layer l: base_model.model.model.layers.<l>.self_attn.adaption_prompt [1, len, dim] and
// ...adaption_gate [1] (gpt2: base_model.model.transformer.h.<l>.attn.adaption_*).
// Initialisation as PEFT's: prompts N(0, 1), gates 0 (the model starts as the base model).
#include <prompthost_sdk/sdk.hpp>

#include <string>
#include <vector>

namespace {

using ph::sdk::ConfigError;

const ph_option kOptions[] = {
    ph::sdk::int_option("adapter_len", "10", 1, 4096, "learned prompt rows per adapted layer"),
    ph::sdk::int_option("adapter_layers", "1", 1, 4096,
                        "adapted layers: the top ones of the model (at most its layer count)"),
    ph::sdk::string_option("target_modules", "null",
                           "the attention module PEFT wraps: self_attn (llama), attn (gpt2); "
                           "null: the model family's"),
};

// PEFT's AdaptionPromptModel is for causal LMs.
const ph_task_type kTaskTypes[] = {PH_TASK_CAUSAL_LM};

const ph_method_descriptor kDescriptor = {
    sizeof(ph_method_descriptor),
    "adaption_prompt",
    "ADAPTION_PROMPT",
    "1.0.0",
    "LLaMA-Adapter (Zhang et al. 2023): learned prompts in the top layers, read by a separate, "
    "zero-gated attention of each layer's queries (llama and gpt2 families).",
    kOptions,
    sizeof(kOptions) / sizeof(kOptions[0]),
    kTaskTypes,
    sizeof(kTaskTypes) / sizeof(kTaskTypes[0])};

// PEFT's module path of layer l's attention in the PeftModel.
std::string attention_path(bool gpt2, const std::string& target, int l) {
  return (gpt2 ? "base_model.model.transformer.h." : "base_model.model.model.layers.") +
         std::to_string(l) + "." + target;
}

class AdaptionPrompt : public ph::sdk::Method {
 public:
  explicit AdaptionPrompt(const ph::sdk::MethodContext& ctx)
      : Method(ctx), config_(ctx.config), dim_(ctx.model.dim) {
    const std::string arch = ctx.model.arch ? ctx.model.arch : "";
    const bool gpt2 = arch == "gpt2";
    if (arch != "llama" && !gpt2)
      throw ConfigError("adapter_layers",
                        "ADAPTION_PROMPT supports the llama and gpt2 families, not " + arch);
    len_ = config_.at("adapter_len").get<int>();
    layers_ = config_.at("adapter_layers").get<int>();
    if (layers_ > ctx.model.n_layers)
      throw ConfigError("adapter_layers", std::to_string(layers_) + " layers, but the model has " +
                                              std::to_string(ctx.model.n_layers));
    const std::string family_target = gpt2 ? "attn" : "self_attn";
    const auto& target = config_.at("target_modules");
    if (target.is_null()) {
      config_["target_modules"] = family_target;
    } else if (!target.is_string() || target.get<std::string>() != family_target) {
      throw ConfigError("target_modules", "must be " + family_target + " for a " + arch +
                                              " model (the attention the engine adapts)");
    }
    for (int i = 0; i < layers_; ++i) {
      const std::string path =
          attention_path(gpt2, family_target, ctx.model.n_layers - layers_ + i);
      Parameter& prompt = add_parameter(path + ".adaption_prompt", {1, (size_t)len_, (size_t)dim_});
      Parameter& gate = add_parameter(path + ".adaption_gate", {1});
      ph::sdk::check(
          ctx.random().fill_normal(ctx.host, ctx.seed, (uint64_t)i, 0.0f, 1.0f, prompt.value.dl()));
      gate.value.values()(0) = 0.0f;
      prompts_.push_back(&prompt);
      gates_.push_back(&gate);
    }
  }

  ph_injection_spec injection() const override {
    ph_injection_spec spec{};
    spec.adapter_len = len_;
    spec.adapter_layers = layers_;
    return spec;
  }

  void forward(const ph::sdk::Batch&, bool, DLTensor*, DLTensor*) override {}
  void backward(const ph::sdk::Batch&, const DLTensor*, const DLTensor*) override {}

  void forward_adapters(const ph::sdk::Batch&, bool, DLTensor* prompts, DLTensor* gates) override {
    auto p = ph::sdk::view<float, 3>(*prompts);  // [layers, len, dim]
    auto g = ph::sdk::view<float, 1>(*gates);
    for (int i = 0; i < layers_; ++i) {
      const auto w = prompts_[i]->value.values();
      for (int t = 0; t < len_; ++t)
        for (int d = 0; d < dim_; ++d) p(i, t, d) = w(0, t, d);
      g(i) = gates_[i]->value.values()(0);
    }
  }

  void backward_adapters(const ph::sdk::Batch&, const DLTensor* grad_prompts,
                         const DLTensor* grad_gates) override {
    const auto p = ph::sdk::view<const float, 3>(*grad_prompts);
    const auto g = ph::sdk::view<const float, 1>(*grad_gates);
    for (int i = 0; i < layers_; ++i) {
      auto w = prompts_[i]->grad.values();
      for (int t = 0; t < len_; ++t)
        for (int d = 0; d < dim_; ++d) w(0, t, d) += p(i, t, d);
      gates_[i]->grad.values()(0) += g(i);
    }
  }

  // PEFT's checkpoint: every parameter under its own name, and the 10-key config (the
  // host drops its prompt-learning geometry for adapter specs).
  void export_adapter(const ph_tensor_sink& sink) const override {
    for (int i = 0; i < layers_; ++i) {
      put_tensor(sink, prompts_[i]->name.c_str(), prompts_[i]->value.dl());
      put_tensor(sink, gates_[i]->name.c_str(), gates_[i]->value.dl());
    }
    put_config(sink, {{"adapter_len", len_},
                      {"adapter_layers", layers_},
                      {"target_modules", config_.at("target_modules")}});
  }

  void import_adapter(const ph_tensor_source& source) override {
    for (int i = 0; i < layers_; ++i) {
      const auto p = ph::sdk::view<const float, 3>(get_tensor(
          source, prompts_[i]->name.c_str(), {1, len_, dim_}, "1, adapter_len, hidden size"));
      auto w = prompts_[i]->value.values();
      for (int t = 0; t < len_; ++t)
        for (int d = 0; d < dim_; ++d) w(0, t, d) = p(0, t, d);
      const auto g =
          ph::sdk::view<const float, 1>(get_tensor(source, gates_[i]->name.c_str(), {1}, "1"));
      gates_[i]->value.values()(0) = g(0);
    }
  }

 private:
  nlohmann::json config_;
  int dim_ = 0;
  int len_ = 0;     // adapter_len
  int layers_ = 0;  // adapter_layers
  std::vector<Parameter*> prompts_, gates_;
};

}  // namespace

PH_EXPORT_METHOD(AdaptionPrompt, kDescriptor)
