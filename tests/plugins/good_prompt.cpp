// good_prompt: a tiny, correct prompt-tuning plugin written with the SDK, for the host's
// tests and the conformance runner's. Virtual tokens N(0, 1) from the host's random
// service, shared by the batch (or copied per example with per_example=true), and an
// optional key/value prefix (num_prefix_tokens > 0) so that both injection kinds are
// exercised. Forward copies the parameters, backward accumulates.
//
// Built four times: as good_prompt; as wrong_gradient with GOOD_PROMPT_GRADIENT_SCALE set
// to a wrong value (a gradient check must catch it); as crashes_on_request and
// hangs_on_request, which crash or hang in the call PH_TEST_MISBEHAVE names (misbehave.h);
// as causal_only_prompt with GOOD_PROMPT_CAUSAL_ONLY, declaring CAUSAL_LM as its only task
// type (the host and the SDK must refuse the others); as featured_prompt with
// GOOD_PROMPT_FEATURES, which also uses ABI 1.2's features (adapter prompts in the top
// layer with a gate, score_labels, after_step, a teacher) for prompthost-validate's
// checks of them, and as bad_labels / nan_after_step / bad_teacher / wrong_adapter_gradient
// (GOOD_PROMPT_BREAK_*), each breaking one of them.
#include <prompthost_sdk/sdk.hpp>

#include <xtensor/xnoalias.hpp>

#include <algorithm>
#include <cmath>

#include <string>

#include "misbehave.h"

#ifndef GOOD_PROMPT_NAME
#define GOOD_PROMPT_NAME "good_prompt"
#endif
#ifndef GOOD_PROMPT_GRADIENT_SCALE
#define GOOD_PROMPT_GRADIENT_SCALE 1.0f
#endif

namespace {

using namespace ph::sdk;

const ph_option kOptions[] = {
    int_option("num_virtual_tokens", "4", 1, 4096, "virtual tokens prepended to every example"),
    bool_option("per_example", "false",
                "one set of virtual tokens per example (copies of the shared parameters)"),
    int_option("num_prefix_tokens", "0", 0, 64, "key/value prefix length; 0: none"),
};

#if defined(GOOD_PROMPT_CAUSAL_ONLY) || defined(GOOD_PROMPT_FEATURES)
const ph_task_type kTaskTypes[] = {PH_TASK_CAUSAL_LM};
#else
const ph_task_type kTaskTypes[] = {PH_TASK_CAUSAL_LM, PH_TASK_SEQ_2_SEQ_LM, PH_TASK_SEQ_CLS};
#endif

const ph_method_descriptor kDescriptor = {
    sizeof(ph_method_descriptor),
    GOOD_PROMPT_NAME,
    "PROMPT_TUNING",
    "1.0.0",
    "A tiny prompt-tuning method for PromptHost's own tests: trainable virtual-token "
    "embeddings drawn from N(0, 1), and optionally a trainable key/value prefix.",
    kOptions,
    sizeof(kOptions) / sizeof(kOptions[0]),
    kTaskTypes,
    sizeof(kTaskTypes) / sizeof(kTaskTypes[0])};

std::string shape_text(const std::vector<size_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// Throws unless `t` has exactly `shape`.
void expect_shape(const DLTensor& t, const std::vector<size_t>& shape, const char* what) {
  bool same = t.ndim == (int)shape.size();
  for (int i = 0; same && i < t.ndim; ++i) same = t.shape[i] == (int64_t)shape[i];
  if (!same)
    throw Error(PH_ERR_INVALID_ARGUMENT, std::string(what) + " has shape " + shape_string(t) +
                                             ", expected " + shape_text(shape));
}

class GoodPrompt : public Method {
 public:
  explicit GoodPrompt(const MethodContext& ctx)
      : Method(ctx),
        n_(ctx.config.at("num_virtual_tokens").get<size_t>()),
        per_example_(ctx.config.at("per_example").get<bool>()),
        n_prefix_(ctx.config.at("num_prefix_tokens").get<size_t>()),
        model_(ctx.model) {
    misbehave_if_requested("create");
    embedding_ = &add_parameter("embedding.weight", {n_, (size_t)model_.dim});
    check(ctx.random().fill_normal(ctx.host, ctx.seed, /*stream=*/0, 0.0f, 1.0f,
                                   embedding_->value.dl()));
    if (n_prefix_ > 0) {
      prefix_ = &add_parameter("prefix.weight", prefix_shape());
      check(ctx.random().fill_normal(ctx.host, ctx.seed, /*stream=*/1, 0.0f, 0.02f,
                                     prefix_->value.dl()));
    }
#ifdef GOOD_PROMPT_FEATURES
    // LLaMA-Adapter's tensors, PEFT's init: prompts N(0, 1), gates 0.
    prompts_ = &add_parameter("adaption_prompt", {kAdapterLayers, kAdapterLen, (size_t)model_.dim});
    check(ctx.random().fill_normal(ctx.host, ctx.seed, /*stream=*/2, 0.0f, 1.0f,
                                   prompts_->value.dl()));
    gates_ = &add_parameter("adaption_gate", {kAdapterLayers});
    for (int64_t i = 0; i < 4; ++i) context_ids_[i] = 3 + i;
    teacher_ = ph_teacher_spec{sizeof(ph_teacher_spec), 4, 1.0f, context_ids_, 4, 0};
#ifdef GOOD_PROMPT_BREAK_TEACHER
    teacher_.top_k = 0;
    context_ids_[1] = model_.vocab_size;
#endif
#endif
  }

  ph_injection_spec injection() const override {
    ph_injection_spec spec = virtual_tokens_spec((int32_t)n_, per_example_);
    spec.n_prefix = (int32_t)n_prefix_;
#ifdef GOOD_PROMPT_FEATURES
    spec.adapter_len = (int32_t)kAdapterLen;
    spec.adapter_layers = (int32_t)kAdapterLayers;
#endif
    return spec;
  }

  void forward(const Batch& batch, bool, DLTensor* virtual_tokens, DLTensor* prefix) override {
    misbehave_if_requested("forward", batch.step);
    const size_t sets = per_example_ ? (size_t)batch.size : 1, dim = (size_t)model_.dim;
    if (!virtual_tokens) throw Error(PH_ERR_INVALID_ARGUMENT, "no virtual_tokens output");
    expect_shape(*virtual_tokens, {sets, n_, dim}, "virtual_tokens");
    auto out = view<float, 3>(*virtual_tokens);  // honours the host's strides
    const auto e = embedding_->value.values();
    for (size_t s = 0; s < sets; ++s)
      for (size_t j = 0; j < n_; ++j)
        for (size_t d = 0; d < dim; ++d) out(s, j, d) = e(j, d);
    if (prefix_) {
      if (!prefix) throw Error(PH_ERR_INVALID_ARGUMENT, "no prefix output");
      expect_shape(*prefix, prefix_shape(), "prefix");
      xt::noalias(view<float, 5>(*prefix)) = prefix_->value.values();
    }
  }

  void backward(const Batch& batch, const DLTensor* grad_virtual,
                const DLTensor* grad_prefix) override {
    misbehave_if_requested("backward", batch.step);
    const size_t sets = per_example_ ? (size_t)batch.size : 1, dim = (size_t)model_.dim;
    if (!grad_virtual) throw Error(PH_ERR_INVALID_ARGUMENT, "no virtual_tokens gradient");
    expect_shape(*grad_virtual, {sets, n_, dim}, "grad_virtual");
    auto g = view<const float, 3>(*grad_virtual);
    auto grad = embedding_->grad.values();  // a view: writes reach the parameter
    for (size_t s = 0; s < sets; ++s)
      for (size_t j = 0; j < n_; ++j)
        for (size_t d = 0; d < dim; ++d) grad(j, d) += GOOD_PROMPT_GRADIENT_SCALE * g(s, j, d);
    if (prefix_) {
      if (!grad_prefix) throw Error(PH_ERR_INVALID_ARGUMENT, "no prefix gradient");
      expect_shape(*grad_prefix, prefix_shape(), "grad_prefix");
      xt::noalias(prefix_->grad.values()) +=
          GOOD_PROMPT_GRADIENT_SCALE * view<const float, 5>(*grad_prefix);
    }
  }

  void export_adapter(const ph_tensor_sink& sink) const override {
    misbehave_if_requested("export");
    put_tensor(sink, "prompt_embeddings", embedding_->value.dl());
    if (prefix_) put_tensor(sink, "prefix_key_values", prefix_->value.dl());
#ifdef GOOD_PROMPT_FEATURES
    put_tensor(sink, "adaption_prompt", prompts_->value.dl());
    put_tensor(sink, "adaption_gate", gates_->value.dl());
#endif
    put_config(sink, {{"num_virtual_tokens", n_}, {"token_dim", model_.dim}});
  }

  void import_adapter(const ph_tensor_source& source) override {
    const DLTensor& e = get_tensor(source, "prompt_embeddings");
    expect_shape(e, {n_, (size_t)model_.dim}, "prompt_embeddings");
    if (prefix_) {
      const DLTensor& p = get_tensor(source, "prefix_key_values");
      expect_shape(p, prefix_shape(), "prefix_key_values");
      xt::noalias(prefix_->value.values()) = view<const float, 5>(p);
    }
    // After every check (all or nothing), and in place: the host holds pointers to the
    // parameters' memory, so a plain `=` (which may swap in a new buffer) would break them.
#ifdef GOOD_PROMPT_FEATURES
    const DLTensor& prompts = get_tensor(source, "adaption_prompt");
    expect_shape(prompts, {kAdapterLayers, kAdapterLen, (size_t)model_.dim}, "adaption_prompt");
    const DLTensor& gates = get_tensor(source, "adaption_gate");
    expect_shape(gates, {kAdapterLayers}, "adaption_gate");
    xt::noalias(prompts_->value.values()) = view<const float, 3>(prompts);
    xt::noalias(gates_->value.values()) = view<const float, 1>(gates);
#endif
    xt::noalias(embedding_->value.values()) = view<const float, 2>(e);
  }

#ifdef GOOD_PROMPT_FEATURES
  void forward_adapters(const Batch&, bool, DLTensor* prompts, DLTensor* gates) override {
    expect_shape(*prompts, {kAdapterLayers, kAdapterLen, (size_t)model_.dim}, "adapter_prompts");
    expect_shape(*gates, {kAdapterLayers}, "adapter_gates");
    xt::noalias(view<float, 3>(*prompts)) = prompts_->value.values();
    xt::noalias(view<float, 1>(*gates)) = gates_->value.values();
  }

  void backward_adapters(const Batch&, const DLTensor* grad_prompts,
                         const DLTensor* grad_gates) override {
#ifdef GOOD_PROMPT_BREAK_ADAPTER_GRADIENT
    const float scale = -1.0f;
#else
    const float scale = 1.0f;
#endif
    xt::noalias(prompts_->grad.values()) += scale * view<const float, 3>(*grad_prompts);
    xt::noalias(gates_->grad.values()) += scale * view<const float, 1>(*grad_gates);
  }

  // CPT-like: the scored labels of odd positions count half.
  void score_labels(const Batch& batch, ph_scored_sequence* sequences) override {
    for (int64_t b = 0; b < batch.size; ++b) {
      ph_scored_sequence& s = sequences[b];
      for (int64_t t = 0; t < s.length; ++t)
        if (s.labels[t] != -100 && t % 2 == 1) s.weights[t] = 0.5f;
#ifdef GOOD_PROMPT_BREAK_LABELS
      s.labels[s.length - 1] = model_.vocab_size;  // outside the vocabulary
#endif
    }
  }

  // A projection: every value back into [-kBound, kBound].
  void after_step(int64_t) override {
    for (size_t i = 0; i < parameter_count(); ++i) {
      auto v = parameter(i).value.values();
      for (float& x : v) x = std::min(std::max(x, -kBound), kBound);
    }
#ifdef GOOD_PROMPT_BREAK_AFTER_STEP
    embedding_->value.values()(0, 0) = std::nanf("");
#endif
  }

  const ph_teacher_spec* teacher() const override {
    return &teacher_;
  }
#endif

 private:
  std::vector<size_t> prefix_shape() const {
    return {(size_t)model_.n_layers, 2, (size_t)model_.n_kv_heads, n_prefix_,
            (size_t)model_.head_dim};
  }

  size_t n_;
  bool per_example_;
  size_t n_prefix_;
  ph_model_info model_;
  Parameter* embedding_ = nullptr;
  Parameter* prefix_ = nullptr;
#ifdef GOOD_PROMPT_FEATURES
  static constexpr size_t kAdapterLen = 2, kAdapterLayers = 1;
  static constexpr float kBound = 3.0f;
  Parameter* prompts_ = nullptr;
  Parameter* gates_ = nullptr;
  int64_t context_ids_[4] = {};
  ph_teacher_spec teacher_{};
#endif
};

}  // namespace

PH_EXPORT_METHOD(GoodPrompt, kDescriptor)
