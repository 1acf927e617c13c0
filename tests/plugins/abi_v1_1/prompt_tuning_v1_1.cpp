// Prompt tuning (Lester et al. 2021), with Hugging Face PEFT's options and layout
// (peft-spec §2.1): n virtual-token embeddings prepended to the input, trained directly.
// SEQ_2_SEQ_LM (num_transformer_submodules = 2): PEFT's table has 2n rows, of which the
// first n go before the encoder's input; the other n are kept (saved, exported) unused.
//
// Parameters: embedding.weight [r, dim], r = n * num_transformer_submodules. Export:
// prompt_embeddings [r, dim].
// Initialisation: RANDOM (N(0, 1), as PyTorch's Embedding), SAMPLE_VOCAB (rows of the
// frozen embedding at uniformly drawn token ids), TEXT (the rows of the tokens of a text,
// tiled or cut to n, as PEFT does).
#include <prompthost_sdk/sdk.hpp>

// Built against tests/plugins/abi_v1_1/prompthost_sdk, the SDK frozen as released at ABI
// 1.1 (a verbatim copy of sdk/include at commit 4a5ecdf): this file is
// plugins/prompt_tuning/prompt_tuning.cpp of that release, renamed abi_v1_1_prompt_tuning.
// Its method table ends at get_extension and its spec at n_decoder_virtual: a 1.2 host
// must drive it through forward/backward and read none of 1.2's fields
// (tests/unit/test_plugin_abi_versions.cpp, tests/validate).
static_assert(PH_ABI_MAJOR == 1 && PH_ABI_MINOR == 1, "must build against the frozen 1.1 SDK");

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

// PEFT's prompt learning supports every task type PromptHost has.
const ph_task_type kTaskTypes[] = {PH_TASK_CAUSAL_LM, PH_TASK_SEQ_2_SEQ_LM, PH_TASK_SEQ_CLS};

const ph_method_descriptor kDescriptor = {
    sizeof(ph_method_descriptor),
    "abi_v1_1_prompt_tuning",
    "PROMPT_TUNING",
    "1.0.0",
    "Prompt tuning (Lester et al. 2021): trainable virtual-token embeddings prepended to the "
    "input of the frozen model.",
    kOptions,
    sizeof(kOptions) / sizeof(kOptions[0]),
    kTaskTypes,
    sizeof(kTaskTypes) / sizeof(kTaskTypes[0])};

class PromptTuning : public ph::sdk::Method {
 public:
  explicit PromptTuning(const ph::sdk::MethodContext& ctx)
      : Method(ctx), config_(ctx.config), model_(ctx.model), dim_(ctx.model.dim) {
    n_ = config_.at("num_virtual_tokens").get<int>();
    rows_ = n_ * model_.num_transformer_submodules;
    const std::string init = config_.at("prompt_tuning_init").get<std::string>();
    embedding_ = &add_parameter("embedding.weight", {(size_t)rows_, (size_t)dim_});
    ph::sdk::Tensor& w = embedding_->value;
    if (init == "RANDOM") {
      ph::sdk::check(ctx.random().fill_normal(ctx.host, ctx.seed, 0, 0.0f, 1.0f, w.dl()));
    } else if (init == "SAMPLE_VOCAB") {
      std::vector<int64_t> ids(rows_);
      ph::sdk::BorrowedTensor<int64_t> dl_ids(ids.data(), {rows_});
      ph::sdk::check(
          ctx.random().fill_integers(ctx.host, ctx.seed, 1, ctx.model.vocab_size, dl_ids.dl()));
      ph::sdk::check(ctx.model_service().embed(ctx.host, dl_ids.dl(), w.dl()));
    } else {  // TEXT
      const auto& text = config_.at("prompt_tuning_init_text");
      if (!text.is_string() || text.get<std::string>().empty())
        throw ConfigError("prompt_tuning_init_text", "TEXT initialisation needs a text");
      const std::vector<int64_t> ids = ctx.tokenize(text.get<std::string>());
      if (ids.empty()) throw ConfigError("prompt_tuning_init_text", "the text has no tokens");
      ctx.embed_tiled(ids, w.dl());  // repeated, then cut to every row (PEFT)
    }
  }

  // Every row is injected (the host allocates them all); the first n go in the input.
  ph_injection_spec injection() const override {
    ph_injection_spec spec = ph::sdk::virtual_tokens_spec(rows_);
    spec.n_input_virtual = n_;
    return spec;
  }

  void forward(const ph::sdk::Batch&, bool, DLTensor* virtual_tokens, DLTensor*) override {
    auto out = ph::sdk::view<float, 3>(*virtual_tokens);  // [1, rows, dim]
    const auto w = embedding_->value.values();
    for (int i = 0; i < rows_; ++i)
      for (int d = 0; d < dim_; ++d) out(0, i, d) = w(i, d);
  }

  void backward(const ph::sdk::Batch&, const DLTensor* grad_virtual, const DLTensor*) override {
    const auto g = ph::sdk::view<const float, 3>(*grad_virtual);
    auto gw = embedding_->grad.values();
    for (int i = 0; i < rows_; ++i)
      for (int d = 0; d < dim_; ++d) gw(i, d) += g(0, i, d);
  }

  void export_adapter(const ph_tensor_sink& sink) const override {
    put_tensor(sink, "prompt_embeddings", embedding_->value.dl());
    nlohmann::json fields = ph::sdk::peft_model_fields(model_);
    fields.update({{"num_virtual_tokens", n_},
                   {"prompt_tuning_init", config_.at("prompt_tuning_init")},
                   {"prompt_tuning_init_text", config_.at("prompt_tuning_init_text")},
                   {"tokenizer_name_or_path", config_.at("tokenizer_name_or_path")},
                   {"tokenizer_kwargs", nullptr}});
    put_config(sink, fields);
  }

  void import_adapter(const ph_tensor_source& source) override {
    const DLTensor& t =
        get_tensor(source, "prompt_embeddings", {rows_, dim_},
                   "num_virtual_tokens * num_transformer_submodules, the model's hidden size");
    const auto src = ph::sdk::view<const float, 2>(t);
    auto w = embedding_->value.values();
    for (int i = 0; i < rows_; ++i)
      for (int d = 0; d < dim_; ++d) w(i, d) = src(i, d);
  }

 private:
  nlohmann::json config_;
  ph_model_info model_;
  int dim_ = 0;
  int n_ = 0;     // num_virtual_tokens
  int rows_ = 0;  // n * num_transformer_submodules: PEFT's table
  Parameter* embedding_ = nullptr;
};

}  // namespace

PH_EXPORT_METHOD(PromptTuning, kDescriptor)
