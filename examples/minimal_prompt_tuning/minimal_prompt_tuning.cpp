// minimal_prompt_tuning: prompt tuning (Lester et al. 2021) in one file, the smallest
// complete PromptHost method plugin. It learns `num_virtual_tokens` vectors of the model's
// hidden size and prepends them to every example. The adapters it exports have Hugging Face
// PEFT's PROMPT_TUNING layout (RANDOM initialisation), so PEFT loads them too.
//
// Built out of tree against the installed SDK (CMakeLists.txt beside this file); walked
// through in docs/writing-a-plugin.md.
#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <string>

#include <nlohmann/json.hpp>
#include <xtensor/xnoalias.hpp>
#include <xtensor/xview.hpp>

#include <prompthost_sdk/sdk.hpp>  // the ABI (plugin_abi.h) and the C++ helpers

namespace {

using ph::sdk::ConfigError;
using ph::sdk::Error;

// ---- 1. What the method is: options and descriptor --------------------------------------

constexpr int kMaxVirtualTokens = 4096;

// The host turns each option into a `--set name=value` flag and an adapter_config.json
// field, checks its type and bounds, fills in its default, and hands create() a JSON object
// holding every option. Defaults are JSON text.
const ph_option kOptions[] = {
    ph::sdk::int_option("num_virtual_tokens", "8", 1, kMaxVirtualTokens,
                        "virtual tokens prepended to every example"),
    ph::sdk::float_option("init_std", "1.0", 0, 100,
                          "standard deviation of the N(0, std^2) initialisation (PEFT: 1)"),
};

// The task types it supports (ABI 1.1): its n rows are PEFT's layout for one submodule,
// decoders and classifiers; SEQ_2_SEQ_LM needs 2n (see plugins/prompt_tuning). The host
// refuses the others before creating an instance.
const ph_task_type kTaskTypes[] = {PH_TASK_CAUSAL_LM, PH_TASK_SEQ_CLS};

// Read by the host before anything is created; static, so valid while the library is loaded.
const ph_method_descriptor kDescriptor = {
    sizeof(ph_method_descriptor),
    "minimal_prompt_tuning",  // the name users pass to --plugin
    "PROMPT_TUNING",          // PEFT's peft_type of the exported adapters
    "0.1.0",                  // the plugin's own version
    "Prompt tuning, the SDK's minimal example: trainable virtual tokens prepended to every "
    "example, shared by the batch.",
    kOptions,
    sizeof(kOptions) / sizeof(kOptions[0]),
    kTaskTypes,
    sizeof(kTaskTypes) / sizeof(kTaskTypes[0]),
};

// The stream of the host's random generator this method draws its initialisation from.
constexpr uint64_t kInitStream = 0;

// Throws (with `code`) unless `t` is a float32 tensor of exactly `shape`. Checking before
// writing anything is what keeps outputs untouched when a call fails.
void expect_shape(const DLTensor* t, std::initializer_list<int64_t> shape, const char* what,
                  ph_code code = PH_ERR_INVALID_ARGUMENT) {
  bool ok = t && ph::sdk::is_float32(*t) && t->ndim == (int)shape.size();
  for (size_t i = 0; ok && i < shape.size(); ++i) ok = t->shape[i] == shape.begin()[i];
  if (ok) return;
  std::string want;
  for (int64_t d : shape) want += (want.empty() ? "" : ", ") + std::to_string(d);
  throw Error(code, std::string(what) + " is " + (t ? ph::sdk::shape_string(*t) : "missing") +
                        ", expected float32 [" + want + "]");
}

// ---- 2. One instance: its parameter and its maths ---------------------------------------

class MinimalPromptTuning : public ph::sdk::Method {
 public:
  // Runs inside ph_plugin_entry.create; an exception here fails create with a status.
  explicit MinimalPromptTuning(const ph::sdk::MethodContext& ctx)
      : Method(ctx),
        model_(ctx.model),
        n_(virtual_tokens(ctx)),
        // The one trainable tensor, named by PEFT's module path. The SDK owns its value and
        // gradient and hands the host DLTensor views of both.
        weight_(add_parameter("embedding.weight", {(size_t)n_, (size_t)model_.dim})) {
    const nlohmann::json& init_std = ctx.config.at("init_std");
    if (!init_std.is_number() || !std::isfinite(init_std.get<double>()) || init_std < 0)
      throw ConfigError("init_std", "must be a finite number >= 0, got " + init_std.dump());
    // N(0, std^2) from the host's counter-based generator: the same seed gives the same
    // prompt on every machine. A plugin never uses <random>, the clock or random_device.
    const ph_host_random& random = ctx.random();  // service "ph.host.random/1"
    ph::sdk::check(random.fill_normal(ctx.host, ctx.seed, kInitStream, 0.0f, init_std.get<float>(),
                                      weight_.value.dl()));
  }

  // The injection, fixed for the instance's life: n virtual tokens shared by the whole batch
  // (the host allocates [1, n, dim]), all prepended (no template), no key/value prefix.
  ph_injection_spec injection() const override {
    ph_injection_spec spec{};
    spec.struct_size = sizeof(spec);
    spec.n_virtual = (int32_t)n_;
    spec.per_example = 0;
    spec.n_prefix = 0;
    spec.template_text = nullptr;  // NULL: every virtual token before the text, as in PEFT
    return spec;
  }

  // The injection is the parameter itself: copy it into the host's tensor. ph::sdk::view is
  // a zero-copy xtensor view honouring the tensor's strides; write through xt::noalias.
  void forward(const ph::sdk::Batch& /*batch*/, bool /*train*/, DLTensor* virtual_tokens,
               DLTensor* /*prefix: none declared*/) override {
    expect_shape(virtual_tokens, {1, n_, model_.dim}, "virtual_tokens");
    auto out = ph::sdk::view<float, 3>(*virtual_tokens);
    xt::noalias(xt::view(out, 0, xt::all(), xt::all())) = weight_.value.values();
  }

  // d loss / d weight = d loss / d virtual_tokens (a copy's Jacobian is the identity).
  // Gradients accumulate; the host zeroes them when it wants a fresh sum. Parameters are
  // updated in place with xt::noalias: a plain `values() += ...` or `values() = ...` may
  // move the array to new memory, behind the DLTensor views the host holds.
  void backward(const ph::sdk::Batch& /*batch*/, const DLTensor* grad_virtual,
                const DLTensor* /*grad_prefix*/) override {
    expect_shape(grad_virtual, {1, n_, model_.dim}, "grad_virtual");
    auto grad = ph::sdk::view<const float, 3>(*grad_virtual);
    xt::noalias(weight_.grad.values()) += xt::view(grad, 0, xt::all(), xt::all());
  }

  // PEFT's layout: one tensor "prompt_embeddings" [n, dim] and PROMPT_TUNING's
  // adapter_config.json fields (merged over the fields the host writes itself).
  void export_adapter(const ph_tensor_sink& sink) const override {
    put_tensor(sink, "prompt_embeddings", weight_.value.dl());
    put_config(sink, {{"peft_type", "PROMPT_TUNING"},
                      {"num_virtual_tokens", n_},
                      {"token_dim", model_.dim},
                      {"num_transformer_submodules", 1},
                      {"num_attention_heads", model_.n_heads},
                      {"num_layers", model_.n_layers},
                      {"prompt_tuning_init", "RANDOM"},
                      {"prompt_tuning_init_text", nullptr},
                      {"tokenizer_name_or_path", nullptr},
                      {"tokenizer_kwargs", nullptr}});
  }

  // The inverse: "prompt_embeddings" back into the parameter, checked before anything is
  // written, so that a mismatched adapter leaves the instance as it was.
  void import_adapter(const ph_tensor_source& source) override {
    const DLTensor& t = get_tensor(source, "prompt_embeddings");
    expect_shape(&t, {n_, model_.dim}, "prompt_embeddings", PH_ERR_DATA_LOSS);
    xt::noalias(weight_.value.values()) = ph::sdk::view<const float, 2>(t);
  }

 private:
  // num_virtual_tokens, checked again here (a plugin relies on nothing it did not check),
  // plus what the declaration cannot say: the prompt must leave room in the context.
  static int64_t virtual_tokens(const ph::sdk::MethodContext& ctx) {
    const nlohmann::json& n = ctx.config.at("num_virtual_tokens");
    if (!n.is_number_integer() || n < 1 || n > kMaxVirtualTokens)
      throw ConfigError(
          "num_virtual_tokens",
          "must be an integer in [1, " + std::to_string(kMaxVirtualTokens) + "], got " + n.dump());
    if (ctx.model.max_positions > 0 && n >= ctx.model.max_positions)
      throw ConfigError("num_virtual_tokens", "must be less than the model's context of " +
                                                  std::to_string(ctx.model.max_positions));
    return n.get<int64_t>();
  }

  const ph_model_info model_;  // the frozen model's facts (hidden size, layers, heads)
  const int64_t n_;            // virtual tokens
  Parameter& weight_;          // "embedding.weight" [n, dim]
};

}  // namespace

// ---- 3. The one exported symbol ---------------------------------------------------------

// Defines ph_plugin_entry_v1: init checks the host's ABI version, create builds a
// MinimalPromptTuning, and every exception becomes a status at the boundary.
PH_EXPORT_METHOD(MinimalPromptTuning, kDescriptor)
