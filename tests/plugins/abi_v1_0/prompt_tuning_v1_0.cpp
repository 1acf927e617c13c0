// Prompt tuning (Lester et al. 2021), with Hugging Face PEFT's options and layout
// (peft-spec §2.1): n virtual-token embeddings prepended to the input, trained directly.
//
// Parameters: embedding.weight [n, dim]. Export: prompt_embeddings [n, dim].
// Initialisation: RANDOM (N(0, 1), as PyTorch's Embedding), SAMPLE_VOCAB (rows of the
// frozen embedding at uniformly drawn token ids), TEXT (the rows of the tokens of a text,
// tiled or cut to n, as PEFT does).
#include <prompthost_sdk/sdk.hpp>

// Built against tests/plugins/abi_v1_0/prompthost_sdk, the SDK frozen as released at ABI
// 1.0 (a verbatim copy): this file is plugins/prompt_tuning/prompt_tuning.cpp of that
// release, renamed abi_v1_0_prompt_tuning. It shows that a plugin nobody rebuilt keeps
// loading and working in a later 1.x host (tests/unit/test_plugin_abi_versions.cpp).
static_assert(PH_ABI_MAJOR == 1 && PH_ABI_MINOR == 0, "must build against the frozen 1.0 SDK");

#include <cstring>
#include <string>
#include <vector>

namespace {

using ph::sdk::ConfigError;

const char* const kInits[] = {"RANDOM", "TEXT", "SAMPLE_VOCAB", nullptr};

const ph_option kOptions[] = {
    ph::sdk::int_option("num_virtual_tokens", "20", 1, 4096,
                        "virtual tokens prepended to the input"),
    ph::sdk::choice_option("prompt_tuning_init", "\"RANDOM\"", kInits,
                           "initialisation: RANDOM N(0,1), TEXT (prompt_tuning_init_text), "
                           "SAMPLE_VOCAB (embeddings of random tokens)"),
    ph::sdk::string_option("prompt_tuning_init_text", "null",
                           "text whose token embeddings initialise the prompt (TEXT)"),
    ph::sdk::string_option("tokenizer_name_or_path", "null",
                           "for PEFT's adapter_config.json, which needs it with TEXT; null: "
                           "the base model (--model); PromptHost uses the model's tokenizer"),
};

const ph_method_descriptor kDescriptor = {
    sizeof(ph_method_descriptor),
    "abi_v1_0_prompt_tuning",
    "PROMPT_TUNING",
    "1.0.0",
    "Prompt tuning (Lester et al. 2021): trainable virtual-token embeddings prepended to the "
    "input of the frozen model.",
    kOptions,
    sizeof(kOptions) / sizeof(kOptions[0])};

class PromptTuning : public ph::sdk::Method {
 public:
  explicit PromptTuning(const ph::sdk::MethodContext& ctx)
      : Method(ctx), config_(ctx.config), dim_(ctx.model.dim) {
    n_ = config_.at("num_virtual_tokens").get<int>();
    const std::string init = config_.at("prompt_tuning_init").get<std::string>();
    embedding_ = &add_parameter("embedding.weight", {(size_t)n_, (size_t)dim_});
    ph::sdk::Tensor& w = embedding_->value;
    if (init == "RANDOM") {
      ph::sdk::check(ctx.random().fill_normal(ctx.host, ctx.seed, 0, 0.0f, 1.0f, w.dl()));
    } else if (init == "SAMPLE_VOCAB") {
      std::vector<int64_t> ids(n_);
      ph::sdk::BorrowedTensor<int64_t> dl_ids(ids.data(), {n_});
      ph::sdk::check(
          ctx.random().fill_integers(ctx.host, ctx.seed, 1, ctx.model.vocab_size, dl_ids.dl()));
      ph::sdk::check(ctx.model_service().embed(ctx.host, dl_ids.dl(), w.dl()));
    } else {  // TEXT
      const auto& text = config_.at("prompt_tuning_init_text");
      if (!text.is_string() || text.get<std::string>().empty())
        throw ConfigError("prompt_tuning_init_text", "TEXT initialisation needs a text");
      const std::vector<int64_t> ids = ctx.tokenize(text.get<std::string>());
      if (ids.empty()) throw ConfigError("prompt_tuning_init_text", "the text has no tokens");
      ctx.embed_tiled(ids, w.dl());  // repeated, then cut to n (PEFT)
    }
  }

  ph_injection_spec injection() const override {
    return ph_injection_spec{sizeof(ph_injection_spec), n_, 0, 0, nullptr};
  }

  void forward(const ph::sdk::Batch&, bool, DLTensor* virtual_tokens, DLTensor*) override {
    auto out = ph::sdk::view<float, 3>(*virtual_tokens);  // [1, n, dim]
    const auto w = embedding_->value.values();
    for (int i = 0; i < n_; ++i)
      for (int d = 0; d < dim_; ++d) out(0, i, d) = w(i, d);
  }

  void backward(const ph::sdk::Batch&, const DLTensor* grad_virtual, const DLTensor*) override {
    const auto g = ph::sdk::view<const float, 3>(*grad_virtual);
    auto gw = embedding_->grad.values();
    for (int i = 0; i < n_; ++i)
      for (int d = 0; d < dim_; ++d) gw(i, d) += g(0, i, d);
  }

  void export_adapter(const ph_tensor_sink& sink) const override {
    put_tensor(sink, "prompt_embeddings", embedding_->value.dl());
    put_config(sink, {{"num_virtual_tokens", n_},
                      {"prompt_tuning_init", config_.at("prompt_tuning_init")},
                      {"prompt_tuning_init_text", config_.at("prompt_tuning_init_text")},
                      {"tokenizer_name_or_path", config_.at("tokenizer_name_or_path")},
                      {"tokenizer_kwargs", nullptr}});
  }

  void import_adapter(const ph_tensor_source& source) override {
    const DLTensor& t = get_tensor(source, "prompt_embeddings", {n_, dim_},
                                   "num_virtual_tokens, the model's hidden size");
    const auto src = ph::sdk::view<const float, 2>(t);
    auto w = embedding_->value.values();
    for (int i = 0; i < n_; ++i)
      for (int d = 0; d < dim_; ++d) w(i, d) = src(i, d);
  }

 private:
  nlohmann::json config_;
  int dim_ = 0;
  int n_ = 0;
  Parameter* embedding_ = nullptr;
};

}  // namespace

PH_EXPORT_METHOD(PromptTuning, kDescriptor)
