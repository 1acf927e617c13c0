// Cartridges (Eyuboglu et al. 2025), with Hugging Face PEFT's CARTRIDGE options and layout
// (tests/fixtures/family/README.md §5): a trained key/value prefix of n positions for every
// layer, in the model's key/value geometry, whose first num_frozen_tokens rows are fixed.
//
// Parameters: trainable_embedding [n-k, L*2*kv_dim]. The frozen rows [k, L*2*kv_dim] are
// PEFT's frozen_embedding (requires_grad=False): held here, not a parameter, so they get
// no gradient and no optimizer state. The prefix is cat(frozen, trainable), row t laid out
// as [2L, kv_heads, head_dim] row-major (block 2l the keys, 2l+1 the values of layer l), used
// verbatim (no rotary embedding on the prefix's keys), as prefix tuning's.
// Init: N(0,1) (PEFT's), or from a text (PEFT's initialize_kv_prefix_from_text): the frozen
// model's own cache of the text's first n tokens (ph.host.model prefix_from_ids).
// Training: by context distillation against the frozen model that sees the text (the
// teacher() spec; the host's trainer), or by plain next-token loss (objective=next_token).
// Export: prompt_embeddings [n, L*2*kv_dim] = cat(frozen, trainable) and PEFT's 14-key
// config; import splits the rows again by num_frozen_tokens.
#include <prompthost_sdk/sdk.hpp>

#include <cmath>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

namespace {

using ph::sdk::ConfigError;

const char* const kObjectives[] = {"distillation", "next_token", nullptr};

// The seed of the random frozen rows (see the constructor).
constexpr uint64_t kFrozenSeed = 0;

// The longest init_text_file read: far beyond any model's context.
constexpr std::streamoff kMaxTextFileBytes = 64 << 20;

const ph_option kOptions[] = {
    ph::sdk::int_option("num_virtual_tokens", "20", 1, 4096,
                        "key/value prefix length (cartridge tokens per layer)"),
    ph::sdk::int_option("num_frozen_tokens", "1", 0, 4096,
                        "the first rows of the prefix that are not trained (PEFT: an attention "
                        "sink); at most num_virtual_tokens"),
    ph::sdk::string_option("init_text", "null",
                           "initialise the prefix with the frozen model's keys/values of this "
                           "text's first num_virtual_tokens tokens (BOS added as the model's "
                           "tokenizer does); also the teacher's context"),
    ph::sdk::string_option("init_text_file", "null",
                           "the same, with the text read from this file (not with init_text)"),
    ph::sdk::bool_option("init_text_add_bos", "true",
                         "put the model's BOS before the text's tokens, as Llama's tokenizer "
                         "does (GPT-2's adds none: never for gpt2)"),
    ph::sdk::choice_option("objective", "\"distillation\"", kObjectives,
                           "\"distillation\": match the frozen model that sees the text (or an "
                           "example's \"context\" field); \"next_token\": the labels' "
                           "cross-entropy"),
    ph::sdk::int_option("top_k", "20", 1, 1 << 20,
                        "distillation: the teacher tokens per position that are matched"),
    ph::sdk::float_option("teacher_temperature", "1.0", 0.0, 1e6,
                          "distillation: the teacher's logits are divided by max(T, 1e-5)"),
    ph::sdk::bool_option("distill_labels_only", "false",
                         "distillation: match the teacher only where the data has labels (an "
                         "input/output example's output, as the paper's self-study loss); "
                         "false: every position (PEFT's example)"),
};

// PEFT's CartridgeConfig requires a causal LM.
const ph_task_type kTaskTypes[] = {PH_TASK_CAUSAL_LM};

const ph_method_descriptor kDescriptor = {
    sizeof(ph_method_descriptor),
    "cartridge",
    "CARTRIDGE",
    "1.0.0",
    "Cartridges (Eyuboglu et al. 2025): a trained key/value prefix, initialised from a text's "
    "own keys/values, with its first tokens frozen, trained by distilling the frozen model "
    "that sees the text (or by next-token loss).",
    kOptions,
    sizeof(kOptions) / sizeof(kOptions[0]),
    kTaskTypes,
    sizeof(kTaskTypes) / sizeof(kTaskTypes[0])};

std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) throw ConfigError("init_text_file", "cannot open " + path);
  const std::streamoff size = in.tellg();
  if (size < 0 || size > kMaxTextFileBytes)
    throw ConfigError("init_text_file", path + " is larger than 64 MiB");
  in.seekg(0);
  std::string text((size_t)size, '\0');
  if (!in.read(&text[0], size)) throw ConfigError("init_text_file", "cannot read " + path);
  return text;
}

class Cartridge : public ph::sdk::Method {
 public:
  explicit Cartridge(const ph::sdk::MethodContext& ctx)
      : Method(ctx),
        config_(ctx.config),
        model_(ctx.model),
        layers_(ctx.model.n_layers),
        kv_heads_(ctx.model.n_kv_heads),
        head_dim_(ctx.model.head_dim) {
    n_ = config_.at("num_virtual_tokens").get<int>();
    k_ = config_.at("num_frozen_tokens").get<int>();
    if (k_ > n_)
      throw ConfigError("num_frozen_tokens",
                        std::to_string(k_) + " exceeds num_virtual_tokens " + std::to_string(n_));
    kv_dim_ = kv_heads_ * head_dim_;
    layout_ = ph::sdk::FlatKvPrefix(layers_, kv_heads_, n_, head_dim_);
    flat_dim_ = (int)layout_.flat_dim();
    frozen_.resize({(size_t)k_, (size_t)flat_dim_});
    trainable_ = &add_parameter("trainable_embedding", {(size_t)(n_ - k_), (size_t)flat_dim_});
    flat_.resize({(size_t)n_, (size_t)flat_dim_});

    const std::string text = read_text(config_);
    if (!text.empty()) text_ids_ = text_token_ids(ctx, text);
    if (ctx.for_import) {
      // the import overwrites the prefix
    } else if (!text.empty()) {
      init_from_ids(ctx);
    } else {
      const ph_host_random& rng = ctx.random();
      // The frozen rows are no parameter, so nothing saves them: they are one fixed draw
      // (seed 0 whatever the run's seed), which a resumed run re-creates.
      if (k_ > 0)
        ph::sdk::check(rng.fill_normal(ctx.host, kFrozenSeed, 0, 0.0f, 1.0f, frozen_.dl()));
      if (k_ < n_)
        ph::sdk::check(rng.fill_normal(ctx.host, ctx.seed, 1, 0.0f, 1.0f, trainable_->value.dl()));
    }
    read_teacher();
  }

  ph_injection_spec injection() const override {
    ph_injection_spec spec = ph::sdk::virtual_tokens_spec(0);
    spec.n_prefix = n_;
    return spec;
  }

  const ph_teacher_spec* teacher() const override { return distill_ ? &teacher_ : nullptr; }

  void forward(const ph::sdk::Batch&, bool, DLTensor*, DLTensor* prefix) override {
    if (!prefix) throw ph::sdk::Error(PH_ERR_INVALID_ARGUMENT, "forward: no prefix tensor");
    layout_.unflatten(compute_flat(), *prefix);
  }

  // Only the trainable rows (j >= k) receive their part of d loss / d prefix.
  void backward(const ph::sdk::Batch&, const DLTensor*, const DLTensor* grad_prefix) override {
    if (!grad_prefix) throw ph::sdk::Error(PH_ERR_INVALID_ARGUMENT, "backward: no prefix gradient");
    layout_.add_flat_grad(*grad_prefix, trainable_->grad.data(), k_);
  }

  void export_adapter(const ph_tensor_sink& sink) const override {
    compute_flat();
    put_tensor(sink, "prompt_embeddings", flat_.dl());
    nlohmann::json fields = ph::sdk::peft_model_fields(model_);
    fields.update({{"num_virtual_tokens", n_},
                   {"num_frozen_tokens", k_},
                   // PEFT writes the key/value geometry for prefix methods (GQA)
                   {"token_dim", kv_dim_},
                   {"num_attention_heads", kv_heads_},
                   {"num_layers", layers_}});
    put_config(sink, fields);
  }

  void import_adapter(const ph_tensor_source& source) override {
    const DLTensor& t = get_tensor(source, "prompt_embeddings", {n_, flat_dim_},
                                   "num_virtual_tokens, num_layers * 2 * n_kv_heads * head_dim");
    split_rows(ph::sdk::view<const float, 2>(t));
  }

 private:
  // cat(frozen, trainable) into flat_ [n, flat_dim].
  const float* compute_flat() const {
    std::copy(frozen_.data(), frozen_.data() + frozen_.size(), flat_.data());
    std::copy(trainable_->value.data(), trainable_->value.data() + trainable_->value.size(),
              flat_.data() + frozen_.size());
    return flat_.data();
  }

  // PEFT's load_prompt_embeddings: the first k rows are frozen, the rest trainable.
  template <class View>
  void split_rows(const View& src) {
    auto frozen = frozen_.values();
    auto trainable = trainable_->value.values();
    for (int j = 0; j < n_; ++j)
      for (int c = 0; c < flat_dim_; ++c) {
        if (j < k_)
          frozen(j, c) = src(j, c);
        else
          trainable(j - k_, c) = src(j, c);
      }
  }

  static std::string read_text(const nlohmann::json& config) {
    const auto& text = config.at("init_text");
    const auto& file = config.at("init_text_file");
    if (!text.is_null() && !text.is_string())
      throw ConfigError("init_text", "expected a string or null, got " + text.dump());
    if (!file.is_null() && !file.is_string())
      throw ConfigError("init_text_file", "expected a string or null, got " + file.dump());
    if (text.is_string() && file.is_string())
      throw ConfigError("init_text_file", "give init_text or init_text_file, not both");
    std::string out = text.is_string() ? text.get<std::string>() : std::string();
    if (file.is_string()) out = read_text_file(file.get<std::string>());
    if ((text.is_string() || file.is_string()) && out.empty())
      throw ConfigError(text.is_string() ? "init_text" : "init_text_file", "the text is empty");
    return out;
  }

  // What PEFT's `tokenizer(text)` gives: Llama's tokenizer puts BOS first, GPT-2's adds
  // nothing (its bos_token is not prepended); init_text_add_bos=false: the text alone.
  std::vector<int64_t> text_token_ids(const ph::sdk::MethodContext& ctx, const std::string& text) {
    std::vector<int64_t> ids;
    const bool bos = config_.at("init_text_add_bos").get<bool>();
    if (bos && model_.bos_id >= 0 && std::string(model_.arch) != "gpt2")
      ids.push_back(model_.bos_id);
    const std::vector<int64_t> body = ctx.tokenize(text);
    ids.insert(ids.end(), body.begin(), body.end());
    return ids;
  }

  // PEFT's initialize_kv_prefix_from_text: the cache of the text's first n tokens.
  void init_from_ids(const ph::sdk::MethodContext& ctx) {
    const std::string field = config_.at("init_text").is_string() ? "init_text" : "init_text_file";
    if ((int64_t)text_ids_.size() < n_)
      throw ConfigError(field, "the text has " + std::to_string(text_ids_.size()) +
                                   " tokens, fewer than num_virtual_tokens " + std::to_string(n_));
    const ph_host_model& service = ctx.model_service();
    if (!PH_HAS(&service, ph_host_model, prefix_from_ids) || !service.prefix_from_ids)
      throw ph::sdk::Error(PH_ERR_UNSUPPORTED,
                           "init_text: the host's ph.host.model has no prefix_from_ids (ABI 1.2)");
    std::vector<int64_t> first(text_ids_.begin(), text_ids_.begin() + n_);
    ph::sdk::BorrowedTensor<int64_t> ids(first.data(), {(int64_t)n_});
    ph::sdk::Tensor kv({(size_t)layers_, 2, (size_t)kv_heads_, (size_t)n_, (size_t)head_dim_});
    ph::sdk::check(service.prefix_from_ids(ctx.host, ids.dl(), kv.dl()));
    ph::sdk::Tensor flat({(size_t)n_, (size_t)flat_dim_});
    layout_.flatten(*kv.dl(), flat.data());
    split_rows(flat.values());
  }

  // The teacher: the text's tokens as its context (an example's own "context" field
  // replaces it), top_k and the temperature.
  // Without a text, every example must bring its own "context" (the host checks).
  void read_teacher() {
    distill_ = config_.at("objective").get<std::string>() == "distillation";
    teacher_.struct_size = sizeof(ph_teacher_spec);
    teacher_.top_k = config_.at("top_k").get<int>();
    teacher_.temperature = config_.at("teacher_temperature").get<float>();
    teacher_.context_ids = text_ids_.empty() ? nullptr : text_ids_.data();
    teacher_.n_context_ids = (int64_t)text_ids_.size();
    teacher_.labeled_only = config_.at("distill_labels_only").get<bool>() ? 1 : 0;
  }

  nlohmann::json config_;
  ph_model_info model_;
  int layers_ = 0, kv_heads_ = 0, head_dim_ = 0;
  int n_ = 0, k_ = 0, kv_dim_ = 0, flat_dim_ = 0;
  ph::sdk::FlatKvPrefix layout_;
  ph::sdk::Tensor frozen_;  // [k, flat_dim]: PEFT's frozen_embedding, not trained
  Parameter* trainable_ = nullptr;
  mutable ph::sdk::Tensor flat_;   // [n, flat_dim]: the last cat(frozen, trainable)
  std::vector<int64_t> text_ids_;  // the init text's ids (BOS first where the model adds it)
  bool distill_ = true;
  ph_teacher_spec teacher_{};
};

}  // namespace

PH_EXPORT_METHOD(Cartridge, kDescriptor)
