// Prefix tuning (Li & Liang 2021; P-tuning v2 reparameterisation), with Hugging Face
// PEFT's options and layout (peft-spec §2.3): a trained key/value prefix of n positions for
// every layer, in the model's key/value geometry (GQA: kv_dim = n_kv_heads * head_dim).
//
// Parameters: embedding.weight [n, L*2*kv_dim]; with prefix_projection, embedding.weight
// [n, kv_dim], transform.0.weight [h, kv_dim], transform.0.bias [h], transform.2.weight
// [L*2*kv_dim, h], transform.2.bias [L*2*kv_dim] (Linear, Tanh, Linear).
// Export: prompt_embeddings [n, L*2*kv_dim], the flat prefix (the MLP's output when
// projecting; the MLP is discarded). The flat vector of a position is split row-major
// into [2L, kv_heads, head_dim], block 2l the keys and 2l+1 the values of layer l.
// L is PEFT's num_layers, the model's n_layers: T5's encoder layers (config num_layers),
// whatever the decoder has; the host maps the blocks onto the layers PEFT's way (for
// SEQ_2_SEQ_LM, the decoder's self-attention). The width is always the model's key/value
// geometry (n_kv_heads * head_dim), where PEFT's default hidden size fails for models
// whose heads * head_dim differs from it (T5 with d_kv * heads != d_model, Gemma).
#include <prompthost_sdk/sdk.hpp>

#include <cmath>
#include <string>
#include <vector>

namespace {

using ph::sdk::ConfigError;

const char* const kInitWeights[] = {"zero", nullptr};

const ph_option kOptions[] = {
    ph::sdk::int_option("num_virtual_tokens", "20", 1, 4096,
                        "key/value prefix length (virtual tokens per layer)"),
    ph::sdk::bool_option("prefix_projection", "false",
                         "reparameterise the prefix by an Embedding and a Linear-Tanh-Linear "
                         "MLP (P-tuning v2)"),
    ph::sdk::int_option("encoder_hidden_size", "null", 1, 1 << 20,
                        "hidden width of the projection MLP; null: the key/value width "
                        "(n_kv_heads * head_dim)",
                        true),
    ph::sdk::make_option("init_weights", PH_OPTION_CHOICE, "null",
                         "\"zero\": a zero prefix (or a zero last Linear when projecting); "
                         "null: random",
                         kInitWeights, -HUGE_VAL, HUGE_VAL, true),
    ph::sdk::string_option("prefix_init_text", "null",
                           "initialise the prefix with the keys/values of this text run "
                           "through the frozen model (tiled to num_virtual_tokens; not with "
                           "prefix_projection)"),
};

// PEFT's prompt learning supports every task type PromptHost has.
const ph_task_type kTaskTypes[] = {PH_TASK_CAUSAL_LM, PH_TASK_SEQ_2_SEQ_LM, PH_TASK_SEQ_CLS};

const ph_method_descriptor kDescriptor = {
    sizeof(ph_method_descriptor),
    "prefix_tuning",
    "PREFIX_TUNING",
    "1.0.0",
    "Prefix tuning (Li & Liang 2021): trainable key/value prefixes for every attention layer "
    "of the frozen model, optionally reparameterised by an MLP (prefix_projection).",
    kOptions,
    sizeof(kOptions) / sizeof(kOptions[0]),
    kTaskTypes,
    sizeof(kTaskTypes) / sizeof(kTaskTypes[0])};

// y[r, o] = b[o] + sum_i x[r, i] * w[o, i]   (x [rows, in], w [out, in])
void linear(const float* x, const float* w, const float* b, float* y, int rows, int in, int out) {
  for (int r = 0; r < rows; ++r) {
    const float* xr = x + (size_t)r * in;
    float* yr = y + (size_t)r * out;
    for (int o = 0; o < out; ++o) {
      const float* wo = w + (size_t)o * in;
      float s = b[o];
      for (int i = 0; i < in; ++i) s += xr[i] * wo[i];
      yr[o] = s;
    }
  }
}

class PrefixTuning : public ph::sdk::Method {
 public:
  explicit PrefixTuning(const ph::sdk::MethodContext& ctx)
      : Method(ctx),
        config_(ctx.config),
        model_(ctx.model),
        layers_(ctx.model.n_layers),
        kv_heads_(ctx.model.n_kv_heads),
        head_dim_(ctx.model.head_dim) {
    n_ = config_.at("num_virtual_tokens").get<int>();
    kv_dim_ = kv_heads_ * head_dim_;
    layout_ = ph::sdk::FlatKvPrefix(layers_, kv_heads_, n_, head_dim_);
    flat_dim_ = (int)layout_.flat_dim();
    projection_ = config_.at("prefix_projection").get<bool>();
    const auto& hidden = config_.at("encoder_hidden_size");
    hidden_ = hidden.is_null() ? kv_dim_ : hidden.get<int>();
    if (hidden_ < 1) throw ConfigError("encoder_hidden_size", "must be positive");
    const auto& init = config_.at("init_weights");
    if (!init.is_null() && !(init.is_string() && init.get<std::string>() == "zero"))
      throw ConfigError("init_weights", "expected \"zero\" or null, got " + init.dump());
    const bool zero = init.is_string();
    const auto& text = config_.at("prefix_init_text");
    if (!text.is_null() && !text.is_string())
      throw ConfigError("prefix_init_text", "expected a string or null, got " + text.dump());
    const bool from_text = text.is_string();
    if (from_text && projection_)
      throw ConfigError("prefix_init_text",
                        "cannot initialise from text with prefix_projection (PEFT: the prefix "
                        "is the MLP's output, not a parameter)");
    if (from_text && text.get<std::string>().empty())
      throw ConfigError("prefix_init_text", "the text is empty");
    if (from_text && zero)
      throw ConfigError("prefix_init_text", "cannot be combined with init_weights=\"zero\"");

    const ph_host_random& rng = ctx.random();
    if (!projection_) {
      embedding_ = &add_parameter("embedding.weight", {(size_t)n_, (size_t)flat_dim_});
      if (from_text) {
        if (!ctx.for_import) init_from_text(ctx, text.get<std::string>());
      } else if (!zero) {
        ph::sdk::check(rng.fill_normal(ctx.host, ctx.seed, 0, 0.0f, 1.0f, embedding_->value.dl()));
      }
    } else {
      embedding_ = &add_parameter("embedding.weight", {(size_t)n_, (size_t)kv_dim_});
      w0_ = &add_parameter("transform.0.weight", {(size_t)hidden_, (size_t)kv_dim_});
      b0_ = &add_parameter("transform.0.bias", {(size_t)hidden_});
      w2_ = &add_parameter("transform.2.weight", {(size_t)flat_dim_, (size_t)hidden_});
      b2_ = &add_parameter("transform.2.bias", {(size_t)flat_dim_});
      ph::sdk::check(rng.fill_normal(ctx.host, ctx.seed, 0, 0.0f, 1.0f, embedding_->value.dl()));
      // PyTorch's Linear default: U(±1/sqrt(fan_in)) for weight and bias.
      const float bound0 = 1.0f / std::sqrt((float)kv_dim_);
      const float bound2 = 1.0f / std::sqrt((float)hidden_);
      ph::sdk::check(rng.fill_uniform(ctx.host, ctx.seed, 1, -bound0, bound0, w0_->value.dl()));
      ph::sdk::check(rng.fill_uniform(ctx.host, ctx.seed, 2, -bound0, bound0, b0_->value.dl()));
      if (!zero) {  // "zero": the last Linear's weight and bias stay zero
        ph::sdk::check(rng.fill_uniform(ctx.host, ctx.seed, 3, -bound2, bound2, w2_->value.dl()));
        ph::sdk::check(rng.fill_uniform(ctx.host, ctx.seed, 4, -bound2, bound2, b2_->value.dl()));
      }
    }
    flat_.resize({(size_t)n_, (size_t)flat_dim_});
  }

  ph_injection_spec injection() const override {
    ph_injection_spec spec = ph::sdk::virtual_tokens_spec(0);
    spec.n_prefix = n_;
    return spec;
  }

  void forward(const ph::sdk::Batch&, bool, DLTensor*, DLTensor* prefix) override {
    if (!prefix) throw ph::sdk::Error(PH_ERR_INVALID_ARGUMENT, "forward: no prefix tensor");
    layout_.unflatten(compute_flat(), *prefix);
  }

  void backward(const ph::sdk::Batch&, const DLTensor*, const DLTensor* grad_prefix) override {
    if (!grad_prefix) throw ph::sdk::Error(PH_ERR_INVALID_ARGUMENT, "backward: no prefix gradient");
    if (imported_)  // inference mode: the imported prefix is not trained
      return;
    // d loss / d flat [n, flat_dim]
    std::vector<float> gflat_storage;
    float* gflat;
    if (!projection_) {
      gflat = embedding_->grad.data();  // accumulate straight into the parameter's grad
    } else {
      gflat_storage.assign((size_t)n_ * flat_dim_, 0.0f);
      gflat = gflat_storage.data();
    }
    layout_.add_flat_grad(*grad_prefix, gflat);
    if (projection_) backward_mlp(gflat);
  }

  void export_adapter(const ph_tensor_sink& sink) const override {
    compute_flat();
    put_tensor(sink, "prompt_embeddings", flat_.dl());
    nlohmann::json fields = ph::sdk::peft_model_fields(model_);
    fields.update({{"num_virtual_tokens", n_},
                   {"encoder_hidden_size", hidden_},
                   {"init_weights", config_.at("init_weights")},
                   {"prefix_projection", projection_},
                   // PEFT writes the key/value geometry for prefix methods (GQA, #1901)
                   {"token_dim", kv_dim_},
                   {"num_attention_heads", kv_heads_},
                   {"num_layers", layers_}});
    put_config(sink, fields);
  }

  void import_adapter(const ph_tensor_source& source) override {
    const DLTensor& t = get_tensor(source, "prompt_embeddings");
    if (t.ndim != 2 || t.shape[0] != n_ || t.shape[1] != flat_dim_)
      throw ph::sdk::Error(PH_ERR_DATA_LOSS,
                           "prompt_embeddings is " + ph::sdk::shape_string(t) + ", expected [" +
                               std::to_string(n_) + ", " + std::to_string(flat_dim_) +
                               "] (num_virtual_tokens, num_layers * 2 * n_kv_heads * head_dim = " +
                               std::to_string(layers_) + " * 2 * " + std::to_string(kv_heads_) +
                               " * " + std::to_string(head_dim_) + ")");
    const auto src = ph::sdk::view<const float, 2>(t);
    if (projection_) {
      // PEFT's loaded model holds the flat prefix, not the MLP: use it directly.
      if (imported_flat_.size() != (size_t)n_ * flat_dim_)
        imported_flat_.resize({(size_t)n_, (size_t)flat_dim_});
      auto w = imported_flat_.values();
      for (int j = 0; j < n_; ++j)
        for (int c = 0; c < flat_dim_; ++c) w(j, c) = src(j, c);
      imported_ = true;
    } else {
      auto w = embedding_->value.values();
      for (int j = 0; j < n_; ++j)
        for (int c = 0; c < flat_dim_; ++c) w(j, c) = src(j, c);
    }
  }

 private:
  // The flat prefix [n, flat_dim]: the imported one, the embedding, or the MLP's output
  // (kept in flat_, with the hidden activations for backward).
  const float* compute_flat() const {
    if (imported_) {
      std::copy(imported_flat_.data(), imported_flat_.data() + imported_flat_.size(), flat_.data());
      return flat_.data();
    }
    if (!projection_) {
      std::copy(embedding_->value.data(), embedding_->value.data() + embedding_->value.size(),
                flat_.data());
      return flat_.data();
    }
    hidden_act_.resize((size_t)n_ * hidden_);
    linear(embedding_->value.data(), w0_->value.data(), b0_->value.data(), hidden_act_.data(), n_,
           kv_dim_, hidden_);
    for (float& v : hidden_act_) v = std::tanh(v);
    linear(hidden_act_.data(), w2_->value.data(), b2_->value.data(), flat_.data(), n_, hidden_,
           flat_dim_);
    return flat_.data();
  }

  // Backward through Linear(kv_dim, h) -> Tanh -> Linear(h, flat_dim) from d loss / d flat.
  void backward_mlp(const float* gflat) {
    compute_flat();  // the activations of the current parameters
    const float* x = embedding_->value.data();
    const float* w0 = w0_->value.data();
    const float* w2 = w2_->value.data();
    float* gx = embedding_->grad.data();
    float* gw0 = w0_->grad.data();
    float* gb0 = b0_->grad.data();
    float* gw2 = w2_->grad.data();
    float* gb2 = b2_->grad.data();
    std::vector<float> gh((size_t)n_ * hidden_, 0.0f);
    for (int j = 0; j < n_; ++j) {
      const float* gy = gflat + (size_t)j * flat_dim_;
      const float* hj = hidden_act_.data() + (size_t)j * hidden_;
      float* ghj = gh.data() + (size_t)j * hidden_;
      for (int o = 0; o < flat_dim_; ++o) {
        const float go = gy[o];
        if (go == 0.0f) continue;
        gb2[o] += go;
        const float* w2o = w2 + (size_t)o * hidden_;
        float* gw2o = gw2 + (size_t)o * hidden_;
        for (int k = 0; k < hidden_; ++k) {
          gw2o[k] += go * hj[k];
          ghj[k] += go * w2o[k];
        }
      }
      for (int k = 0; k < hidden_; ++k) ghj[k] *= 1.0f - hj[k] * hj[k];  // tanh'
      const float* xj = x + (size_t)j * kv_dim_;
      float* gxj = gx + (size_t)j * kv_dim_;
      for (int k = 0; k < hidden_; ++k) {
        const float gk = ghj[k];
        gb0[k] += gk;
        const float* w0k = w0 + (size_t)k * kv_dim_;
        float* gw0k = gw0 + (size_t)k * kv_dim_;
        for (int i = 0; i < kv_dim_; ++i) {
          gw0k[i] += gk * xj[i];
          gxj[i] += gk * w0k[i];
        }
      }
    }
  }

  // PEFT's initialize_kv_prefix_from_text: the keys/values of the text (tiled to n by the
  // host) run through the frozen model, flattened into embedding.weight.
  void init_from_text(const ph::sdk::MethodContext& ctx, const std::string& text) {
    ph::sdk::Tensor kv({(size_t)layers_, 2, (size_t)kv_heads_, (size_t)n_, (size_t)head_dim_});
    ph::sdk::check(ctx.model_service().prefix_from_text(ctx.host, text.c_str(), kv.dl()));
    layout_.flatten(*kv.dl(), embedding_->value.data());
  }

  nlohmann::json config_;
  ph_model_info model_;
  int layers_ = 0, kv_heads_ = 0, head_dim_ = 0;
  int n_ = 0, kv_dim_ = 0, flat_dim_ = 0, hidden_ = 0;
  bool projection_ = false;
  bool imported_ = false;  // with projection: forward uses imported_flat_
  ph::sdk::FlatKvPrefix layout_;
  Parameter* embedding_ = nullptr;
  Parameter *w0_ = nullptr, *b0_ = nullptr, *w2_ = nullptr, *b2_ = nullptr;
  mutable ph::sdk::Tensor flat_;           // [n, flat_dim]: the last computed flat prefix
  mutable std::vector<float> hidden_act_;  // [n, hidden]: tanh activations of the last MLP run
  ph::sdk::Tensor imported_flat_;          // [n, flat_dim]: an imported prefix (projection)
};

}  // namespace

PH_EXPORT_METHOD(PrefixTuning, kDescriptor)
