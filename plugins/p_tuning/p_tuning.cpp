// P-tuning (Liu et al. 2021, "GPT Understands, Too"), with Hugging Face PEFT's options and
// layout (peft-spec §2.2): n virtual-token embeddings run through a trained encoder (an
// MLP, or a bidirectional LSTM and an MLP head) give the virtual tokens, prepended to the
// input as PEFT does or placed by a `template` (PromptHost's extension).
//
// Parameters: embedding.weight [r, dim] and the encoder's (encoder.h), r = n *
// num_transformer_submodules (2n for SEQ_2_SEQ_LM, PEFT's layout: the encoder runs over
// all 2n rows, so with the bidirectional LSTM the second n embeddings shape the first n
// prompts, which alone go before the encoder's input). Export: prompt_embeddings
// [r, dim], the encoder's output (the encoder is discarded, as in PEFT); an imported
// adapter gives exactly those embeddings (inference mode).
#include <prompthost_sdk/sdk.hpp>

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "lstm_encoder.h"
#include "mlp_encoder.h"
#include "template.h"

namespace {

using p_tuning::Matrix;
using ph::sdk::ConfigError;

const char* const kKinds[] = {"MLP", "LSTM", nullptr};

const ph_option kOptions[] = {
    ph::sdk::int_option("num_virtual_tokens", "20", 1, 4096, "virtual tokens (all encoded)"),
    ph::sdk::choice_option("encoder_reparameterization_type", "\"MLP\"", kKinds,
                           "encoder: MLP (3 Linear layers) or LSTM (bidirectional, then an MLP)"),
    ph::sdk::int_option("encoder_hidden_size", "null", 1, 1 << 20,
                        "the encoder's hidden width (null: the model's hidden size)", true),
    ph::sdk::int_option("encoder_num_layers", "2", 1, 64,
                        "LSTM layers (ignored by the MLP encoder, as in PEFT)"),
    ph::sdk::float_option("encoder_dropout", "0.0", 0.0, 1.0,
                          "dropout between LSTM layers in training, in [0, 1)"),
    ph::sdk::string_option("template", "null",
                           "where the virtual tokens go, e.g. \"[P:3] {input} [P:3] {output}\" "
                           "([P:k] counts sum to num_virtual_tokens); null: all prepended "
                           "(PEFT)"),
};

// PEFT's prompt learning supports every task type PromptHost has.
const ph_task_type kTaskTypes[] = {PH_TASK_CAUSAL_LM, PH_TASK_SEQ_2_SEQ_LM, PH_TASK_SEQ_CLS};

const ph_method_descriptor kDescriptor = {
    sizeof(ph_method_descriptor),
    "p_tuning",
    "P_TUNING",
    "1.0.0",
    "P-tuning (Liu et al. 2021): virtual-token embeddings reparameterised by a trained MLP or "
    "bidirectional LSTM encoder, prepended to the input of the frozen model (or placed by a "
    "template); the export keeps only the encoder's output, as PEFT does.",
    kOptions,
    sizeof(kOptions) / sizeof(kOptions[0]),
    kTaskTypes,
    sizeof(kTaskTypes) / sizeof(kTaskTypes[0])};

class PTuning : public ph::sdk::Method {
 public:
  explicit PTuning(const ph::sdk::MethodContext& ctx)
      : Method(ctx), config_(ctx.config), model_(ctx.model), dim_(ctx.model.dim) {
    n_ = config_.at("num_virtual_tokens").get<int>();
    rows_ = n_ * model_.num_transformer_submodules;
    kind_ = config_.at("encoder_reparameterization_type").get<std::string>();
    const auto& hidden = config_.at("encoder_hidden_size");
    hidden_ = hidden.is_null() ? dim_ : hidden.get<int>();
    layers_ = config_.at("encoder_num_layers").get<int>();
    dropout_ = config_.at("encoder_dropout").get<double>();
    if (!(dropout_ >= 0.0 && dropout_ < 1.0))
      throw ConfigError("encoder_dropout", "must be in [0, 1), got " + std::to_string(dropout_));
    const auto& tmpl = config_.at("template");
    if (!tmpl.is_null()) {
      template_ = tmpl.get<std::string>();
      p_tuning::check_template(template_, n_);
      has_template_ = true;
    }
    if (kind_ == "MLP" && layers_ != 2) {
      const std::string w = "p_tuning: encoder_num_layers is ignored by the MLP encoder (" +
                            std::to_string(layers_) + " given; it always has 3 Linear layers)";
      ctx.host->log(ctx.host, PH_LOG_WARNING, w.c_str());
    }

    // Every parameter draws from a random stream of its own: 0 for the embedding, then
    // 1, 2, ... in registration order.
    const ph_host_random& random = ctx.random();
    const ph_host* host = ctx.host;
    const uint64_t seed = ctx.seed;
    embedding_ = &add_parameter("embedding.weight", {(size_t)rows_, (size_t)dim_});
    ph::sdk::check(random.fill_normal(host, seed, 0, 0.0f, 1.0f, embedding_->value.dl()));
    uint64_t stream = 1;
    const p_tuning::AddParameter add =
        [&](const std::string& name, const std::vector<size_t>& shape, double bound) -> Parameter& {
      Parameter& p = add_parameter(name, shape);
      ph::sdk::check(
          random.fill_uniform(host, seed, stream++, (float)-bound, (float)bound, p.value.dl()));
      return p;
    };
    if (kind_ == "MLP") {
      encoder_ = std::make_unique<p_tuning::MlpEncoder>(add, dim_, hidden_);
    } else {
      const ph_host_random* r = &random;
      auto draw = [r, host, seed](uint64_t s, size_t count, float* out) {
        ph::sdk::BorrowedTensor<float> t(out, {(int64_t)count});
        ph::sdk::check(r->fill_uniform(host, seed, s, 0.0f, 1.0f, t.dl()));
      };
      encoder_ =
          std::make_unique<p_tuning::LstmEncoder>(add, draw, dim_, hidden_, layers_, dropout_);
    }
    tape_ = encoder_->make_tape();
  }

  // Every row is injected; the first n go in the input (where the template says).
  ph_injection_spec injection() const override {
    ph_injection_spec spec = ph::sdk::virtual_tokens_spec(rows_);
    spec.template_text = has_template_ ? template_.c_str() : nullptr;
    spec.n_input_virtual = n_;
    return spec;
  }

  void forward(const ph::sdk::Batch& batch, bool train, DLTensor* virtual_tokens,
               DLTensor*) override {
    check_shape(virtual_tokens, "virtual_tokens");
    auto out = ph::sdk::view<float, 3>(*virtual_tokens);  // [1, rows, dim]
    if (imported_) {
      const auto p = imported_->values();
      for (int i = 0; i < rows_; ++i)
        for (int d = 0; d < dim_; ++d) out(0, i, d) = p(i, d);
      return;
    }
    const Matrix prompts = encoder_->forward(embeddings(), rows_, train, batch.step, tape_.get());
    for (int i = 0; i < rows_; ++i)
      for (int d = 0; d < dim_; ++d) out(0, i, d) = (float)prompts[(size_t)i * dim_ + d];
    have_tape_ = true;
  }

  void backward(const ph::sdk::Batch&, const DLTensor* grad_virtual, const DLTensor*) override {
    if (imported_)
      throw ph::sdk::Error(PH_ERR_UNSUPPORTED,
                           "p_tuning: an imported adapter holds only the encoder's output "
                           "(prompt_embeddings, as PEFT saves it); it has no encoder to train");
    if (!have_tape_) throw ph::sdk::Error(PH_ERR_INVALID_ARGUMENT, "backward before forward");
    check_shape(grad_virtual, "grad_virtual");
    const auto g = ph::sdk::view<const float, 3>(*grad_virtual);
    Matrix grad_out((size_t)rows_ * dim_);
    for (int i = 0; i < rows_; ++i)
      for (int d = 0; d < dim_; ++d) grad_out[(size_t)i * dim_ + d] = g(0, i, d);
    const Matrix grad_x = encoder_->backward(*tape_, grad_out, rows_);
    float* ge = embedding_->grad.data();
    for (size_t i = 0; i < grad_x.size(); ++i) ge[i] += (float)grad_x[i];
  }

  void export_adapter(const ph_tensor_sink& sink) const override {
    ph::sdk::Tensor prompts({(size_t)rows_, (size_t)dim_});
    if (imported_) {
      prompts = *imported_;
    } else {
      const Matrix out = encoder_->forward(embeddings(), rows_, false, 0, nullptr);  // eval mode
      float* p = prompts.data();
      for (size_t i = 0; i < out.size(); ++i) p[i] = (float)out[i];
    }
    put_tensor(sink, "prompt_embeddings", prompts.dl());
    nlohmann::json fields = ph::sdk::peft_model_fields(model_);
    fields.update({{"num_virtual_tokens", n_},
                   {"encoder_reparameterization_type", kind_},
                   {"encoder_hidden_size", hidden_},
                   {"encoder_num_layers", layers_},
                   {"encoder_dropout", dropout_}});
    put_config(sink, fields);
  }

  void import_adapter(const ph_tensor_source& source) override {
    const DLTensor& t =
        get_tensor(source, "prompt_embeddings", {rows_, dim_},
                   "num_virtual_tokens * num_transformer_submodules, the model's hidden size");
    const auto src = ph::sdk::view<const float, 2>(t);
    auto frozen =
        std::make_unique<ph::sdk::Tensor>(std::vector<size_t>{(size_t)rows_, (size_t)dim_});
    auto dst = frozen->values();
    for (int i = 0; i < rows_; ++i)
      for (int d = 0; d < dim_; ++d) dst(i, d) = src(i, d);
    imported_ = std::move(frozen);
    have_tape_ = false;
  }

 private:
  Matrix embeddings() const {
    const float* w = embedding_->value.data();
    return Matrix(w, w + (size_t)rows_ * dim_);
  }

  void check_shape(const DLTensor* t, const char* what) const {
    if (!t || t->ndim != 3 || t->shape[0] != 1 || t->shape[1] != rows_ || t->shape[2] != dim_)
      throw ph::sdk::Error(PH_ERR_INVALID_ARGUMENT,
                           std::string("p_tuning: ") + what + " is " +
                               (t ? ph::sdk::shape_string(*t) : std::string("missing")) +
                               ", expected [1, " + std::to_string(rows_) + ", " +
                               std::to_string(dim_) + "]");
  }

  nlohmann::json config_;
  ph_model_info model_;
  int dim_ = 0;
  int n_ = 0;     // num_virtual_tokens
  int rows_ = 0;  // n * num_transformer_submodules: PEFT's table and the encoder's sequence
  std::string kind_;
  int hidden_ = 0;
  int layers_ = 0;
  double dropout_ = 0.0;
  bool has_template_ = false;
  std::string template_;
  Parameter* embedding_ = nullptr;
  std::unique_ptr<p_tuning::Encoder> encoder_;
  std::unique_ptr<p_tuning::Tape> tape_;
  bool have_tape_ = false;
  // Set by import_adapter: the exported prompt, used as is (PEFT's loaded model).
  std::unique_ptr<ph::sdk::Tensor> imported_;
};

}  // namespace

PH_EXPORT_METHOD(PTuning, kDescriptor)
