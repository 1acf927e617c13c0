// Context-aware Prompt Tuning (Blau et al. 2024) with Hugging Face PEFT's CPTConfig and
// layout (tests/fixtures/family/README.md §3). The virtual tokens are the embeddings of a
// real context (cpt_token_ids: in-context examples) plus a trained correction:
//   prompt = embedding(cpt_token_ids) + projected delta,
// where each delta row is clipped into a ball whose radius depends on the row's type
// (cpt_tokens_type_mask) and label rows never move. The context's label tokens are
// scored in every example (score_labels, ABI 1.2) with weights decaying by example
// (opt_weighted_loss_type "decay"), and the deltas are projected back into their balls
// after every optimizer step (after_step, ABI 1.2).
//
// Parameters: delta_embedding.weight [n, dim] (zeros). The frozen embedding rows are the
// plugin's own (not trained). Export: prompt_embeddings [n, dim] = embedding + projected
// delta; an imported adapter uses it as a fixed embedding (delta zero), as PEFT does.
#include <prompthost_sdk/sdk.hpp>

#include <algorithm>
#include <string>
#include <vector>

#include "cpt_context.h"
#include "cpt_rules.h"

namespace {

using ph::sdk::ConfigError;

const char* const kLossTypes[] = {"none", "decay", nullptr};

const ph_option kOptions[] = {
    ph::sdk::int_list_option("cpt_token_ids", "[]", 0, 2147483647,
                             "the context's token ids (its length is num_virtual_tokens); [] "
                             "takes cpt_context_file's examples, or PEFT's default [0]"),
    ph::sdk::int_list_option("cpt_mask", "[]", 0, 1,
                             "PEFT's attention mask of the context (saved; PEFT does not use "
                             "it); []: all 1"),
    ph::sdk::int_list_option("cpt_tokens_type_mask", "[]", 0, 2147483647,
                             "type of each context token: 4k+1 input template, 4k+2 input, "
                             "4k+3 output template, 4k+4 label of example k, 0 other; []: all 1"),
    ph::sdk::choice_option("opt_weighted_loss_type", "\"none\"", kLossTypes,
                           "loss weights: none (1), decay (example k from the end: factor^k)"),
    ph::sdk::float_option("opt_loss_decay_factor", "1.0", 0.0, 1.0,
                          "the decay's factor per example"),
    ph::sdk::float_option("opt_projection_epsilon", "0.1", 0.0, 1e6,
                          "radius of the input rows' ball, times sqrt(hidden / 2048)"),
    ph::sdk::float_option("opt_projection_format_epsilon", "0.1", 0.0, 1e6,
                          "radius of the template rows' ball, times sqrt(hidden / 2048)"),
    ph::sdk::string_option("tokenizer_name_or_path", "null",
                           "for PEFT's adapter_config.json; PromptHost uses the model's tokenizer"),
    ph::sdk::string_option("cpt_context_file", "null",
                           "PromptHost: with cpt_token_ids [], a JSONL file of {input, output} "
                           "examples whose first cpt_context_examples form the context"),
    ph::sdk::int_option("cpt_context_examples", "2", 1, 1024,
                        "PromptHost: examples of cpt_context_file in the context"),
    ph::sdk::int_option("num_virtual_tokens", "0", 0, 1048576,
                        "PEFT derives it: len(cpt_token_ids); 0, or that length (checked)"),
};

// PEFT's CPT requires CAUSAL_LM (a ValueError otherwise).
const ph_task_type kTaskTypes[] = {PH_TASK_CAUSAL_LM};

const ph_method_descriptor kDescriptor = {
    sizeof(ph_method_descriptor),
    "cpt",
    "CPT",
    "1.0.0",
    "Context-aware Prompt Tuning (Blau et al. 2024): trained corrections to the embeddings of "
    "real in-context examples, projected into small balls, with the context's labels scored.",
    kOptions,
    sizeof(kOptions) / sizeof(kOptions[0]),
    kTaskTypes,
    sizeof(kTaskTypes) / sizeof(kTaskTypes[0])};

std::vector<int64_t> int_list(const nlohmann::json& config, const char* name) {
  return config.at(name).get<std::vector<int64_t>>();
}

class Cpt : public ph::sdk::Method {
 public:
  explicit Cpt(const ph::sdk::MethodContext& ctx)
      : Method(ctx), config_(ctx.config), model_(ctx.model), dim_(ctx.model.dim) {
    read_context(ctx);
    loss_.decay = config_.at("opt_weighted_loss_type").get<std::string>() == "decay";
    loss_.decay_factor = config_.at("opt_loss_decay_factor").get<double>();
    eps_ = cpt::projection_epsilons(loss_.types, dim_,
                                    config_.at("opt_projection_epsilon").get<double>(),
                                    config_.at("opt_projection_format_epsilon").get<double>());
    embedding_.assign((size_t)n_ * dim_, 0.0f);
    if (!ctx.for_import) {
      ph::sdk::BorrowedTensor<int64_t> ids(loss_.token_ids.data(), {(int64_t)n_});
      ph::sdk::BorrowedTensor<float> out(embedding_.data(), {(int64_t)n_, (int64_t)dim_});
      ph::sdk::check(ctx.model_service().embed(ctx.host, ids.dl(), out.dl()));
    }
    delta_ = &add_parameter("delta_embedding.weight", {(size_t)n_, (size_t)dim_});  // zeros
  }

  ph_injection_spec injection() const override { return ph::sdk::virtual_tokens_spec(n_); }

  void forward(const ph::sdk::Batch&, bool, DLTensor* virtual_tokens, DLTensor*) override {
    const std::vector<float> prompt = prompt_embeddings();
    auto out = ph::sdk::view<float, 3>(*virtual_tokens);  // [1, n, dim]
    for (int i = 0; i < n_; ++i)
      for (int d = 0; d < dim_; ++d) out(0, i, d) = prompt[(size_t)i * dim_ + d];
  }

  // The gradient at the projected point (the projection is not differentiated), masked to
  // the rows that train.
  void backward(const ph::sdk::Batch&, const DLTensor* grad_virtual, const DLTensor*) override {
    const auto g = ph::sdk::view<const float, 3>(*grad_virtual);
    auto gw = delta_->grad.values();
    for (int i = 0; i < n_; ++i) {
      if (!cpt::is_trained_type(loss_.types[i])) continue;
      for (int d = 0; d < dim_; ++d) gw(i, d) += g(0, i, d);
    }
  }

  void score_labels(const ph::sdk::Batch& batch, ph_scored_sequence* sequences) override {
    for (int64_t b = 0; b < batch.size; ++b) {
      ph_scored_sequence& s = sequences[b];
      for (int64_t t = 0; t < s.length; ++t)
        if (s.slots[t] >= n_)
          throw ph::sdk::Error(PH_ERR_INVALID_ARGUMENT,
                               "score_labels: virtual slot " + std::to_string(s.slots[t]) +
                                   " of a context of " + std::to_string(n_) + " tokens");
      cpt::score_sequence(loss_, s.length, s.slots, s.kinds, s.labels, s.weights);
    }
  }

  // PEFT projects at its next forward; projecting right after the step gives the same
  // values and keeps the saved and exported parameters inside their balls.
  void after_step(int64_t) override { cpt::project(delta_->value.data(), n_, dim_, eps_); }

  void export_adapter(const ph_tensor_sink& sink) const override {
    std::vector<float> prompt = prompt_embeddings();
    ph::sdk::BorrowedTensor<float> t(prompt.data(), {(int64_t)n_, (int64_t)dim_});
    put_tensor(sink, "prompt_embeddings", t.dl());
    nlohmann::json fields = ph::sdk::peft_model_fields(model_);
    fields.update({{"num_virtual_tokens", n_},
                   {"cpt_token_ids", loss_.token_ids},
                   {"cpt_mask", mask_},
                   {"cpt_tokens_type_mask", loss_.types},
                   {"opt_weighted_loss_type", config_.at("opt_weighted_loss_type")},
                   {"opt_loss_decay_factor", config_.at("opt_loss_decay_factor")},
                   {"opt_projection_epsilon", config_.at("opt_projection_epsilon")},
                   {"opt_projection_format_epsilon", config_.at("opt_projection_format_epsilon")},
                   {"tokenizer_name_or_path", config_.at("tokenizer_name_or_path")}});
    put_config(sink, fields);
  }

  // PEFT's inference mode: prompt_embeddings becomes the embedding, the delta stays zero.
  void import_adapter(const ph_tensor_source& source) override {
    const DLTensor& t = get_tensor(source, "prompt_embeddings", {n_, dim_},
                                   "num_virtual_tokens (len(cpt_token_ids)), the hidden size");
    const auto src = ph::sdk::view<const float, 2>(t);
    for (int i = 0; i < n_; ++i)
      for (int d = 0; d < dim_; ++d) embedding_[(size_t)i * dim_ + d] = src(i, d);
    std::fill(delta_->value.data(), delta_->value.data() + (size_t)n_ * dim_, 0.0f);
  }

 private:
  // The context and its masks from the options (or from the examples of a file), checked.
  void read_context(const ph::sdk::MethodContext& ctx) {
    loss_.token_ids = int_list(config_, "cpt_token_ids");
    loss_.types = int_list(config_, "cpt_tokens_type_mask");
    mask_ = int_list(config_, "cpt_mask");
    const auto& file = config_.at("cpt_context_file");
    if (loss_.token_ids.empty() && file.is_string() && !ctx.for_import) {
      if (!loss_.types.empty())
        throw ConfigError("cpt_tokens_type_mask",
                          "give it with cpt_token_ids; cpt_context_file sets the types itself");
      const cpt::Context c = cpt::context_from_examples(
          file.get<std::string>(), config_.at("cpt_context_examples").get<int>(),
          [&](const std::string& text) { return ctx.tokenize(text); }, "cpt_context_file");
      loss_.token_ids = c.token_ids;
      loss_.types = c.types;
    }
    if (loss_.token_ids.empty()) loss_.token_ids = {0};  // PEFT's default
    n_ = (int)loss_.token_ids.size();
    if (n_ > model_.max_positions)
      throw ConfigError("cpt_token_ids", std::to_string(n_) +
                                             " context tokens, more than the model's context of " +
                                             std::to_string(model_.max_positions));
    const int declared = config_.at("num_virtual_tokens").get<int>();
    if (declared != 0 && declared != n_)
      throw ConfigError("num_virtual_tokens", std::to_string(declared) + ", but the context has " +
                                                  std::to_string(n_) + " tokens");
    if (mask_.empty()) mask_.assign(n_, 1);
    if (loss_.types.empty()) loss_.types.assign(n_, 1);
    for (const auto& [name, list] :
         {std::pair<const char*, const std::vector<int64_t>*>{"cpt_mask", &mask_},
          {"cpt_tokens_type_mask", &loss_.types}})
      if ((int)list->size() != n_)
        throw ConfigError(name, std::to_string(list->size()) + " entries for " +
                                    std::to_string(n_) + " cpt_token_ids");
    for (int64_t id : loss_.token_ids)
      if (id >= model_.vocab_size)
        throw ConfigError("cpt_token_ids", "token id " + std::to_string(id) +
                                               " is outside the vocabulary of " +
                                               std::to_string(model_.vocab_size));
  }

  // embedding + projected delta, [n, dim] (the parameter itself is left as it is).
  std::vector<float> prompt_embeddings() const {
    std::vector<float> delta(delta_->value.data(), delta_->value.data() + (size_t)n_ * dim_);
    cpt::project(delta.data(), n_, dim_, eps_);
    for (size_t i = 0; i < delta.size(); ++i) delta[i] += embedding_[i];
    return delta;
  }

  nlohmann::json config_;
  ph_model_info model_;
  int dim_ = 0;
  int n_ = 0;
  cpt::LossSettings loss_;
  std::vector<int64_t> mask_;
  std::vector<float> eps_;        // per context row (projection_epsilons)
  std::vector<float> embedding_;  // [n, dim]: the frozen rows (or an imported adapter's)
  Parameter* delta_ = nullptr;
};

}  // namespace

PH_EXPORT_METHOD(Cpt, kDescriptor)
