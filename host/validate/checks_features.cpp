// ABI 1.2's features, each checked only when the plugin has it (otherwise skipped with
// the reason): adapter prompts (shapes, and the gradient of prompts and gates through the
// engine against finite differences), score_labels (labels and weights the engine can
// take, the rewrite deterministic), after_step (parameters stay finite) and the
// distillation teacher (a usable spec). The entries are called on the plugin's own table
// (MethodInstance::table()): what is checked is what the plugin returns.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "host/plugin/status.h"
#include "host/validate/check.h"
#include "host/validate/fixture.h"
#include "models/common/error.h"
#include "prompthost_sdk/sdk/tensor.hpp"

namespace ph::validate {
namespace {

using ph::sdk::BorrowedTensor;

constexpr int kRandomDirections = 1;
// after_step is checked after a step of this size in the largest coordinate: far enough
// for a projection to act.
constexpr float kLargeStep = 10.0f;

// A DLTensor view of an xtensor (the plugin writes or reads it in place).
template <size_t N>
BorrowedTensor<float> borrow(const xt::xtensor<float, N>& t) {
  std::vector<int64_t> shape(t.shape().begin(), t.shape().end());
  return BorrowedTensor<float>(const_cast<float*>(t.data()), std::move(shape));
}

// The batch of a probe, as the host hands it to the plugin.
ph_batch batch_of(const Probe& probe) {
  return ph_batch{sizeof(ph_batch), probe.size(),
                  probe.task_ids.empty() ? nullptr : probe.task_ids.data(), 0};
}

// Every tensor of an injection (or of its gradient) for forward/backward_injection.
struct InjectionViews {
  template <class I>
  explicit InjectionViews(const I& i)
      : virtual_tokens(borrow(i.virtual_tokens)),
        prefix(borrow(i.prefix)),
        prompts(borrow(i.adapter_prompts)),
        gates(borrow(i.adapter_gates)) {
    table = ph_injection_tensors{sizeof(ph_injection_tensors),
                                 i.virtual_tokens.size() ? virtual_tokens.dl() : nullptr,
                                 i.prefix.size() ? prefix.dl() : nullptr, prompts.dl(), gates.dl()};
  }
  BorrowedTensor<float> virtual_tokens, prefix, prompts, gates;
  ph_injection_tensors table;
};

void check_plugin_status(ph_status* status, const std::string& call) {
  if (!status) return;
  const std::string message = host::status_message(status);
  host::base_host()->status_release(host::base_host(), status);
  throw CheckFailed(call + " failed: " + message);
}

// ------------------------------------------------------------------ adapter prompts

// The injection with the adapter prompts and gates the plugin writes (forward_injection;
// the other kinds as the host's forward writes them). Unwritten elements stay NaN.
Injection adapter_forward(host::MethodInstance& instance, const Probe& probe, const AdapterSpec& a,
                          int dim) {
  Injection injection = instance.forward(probe.size(), probe.task_ids, false);
  const float nan = std::numeric_limits<float>::quiet_NaN();
  injection.adapter_prompts = xt::xtensor<float, 3>(
      std::array<size_t, 3>{(size_t)a.adapter_layers, (size_t)a.adapter_len, (size_t)dim}, nan);
  injection.adapter_gates =
      xt::xtensor<float, 1>(std::array<size_t, 1>{(size_t)a.adapter_layers}, nan);
  const InjectionViews views(injection);
  const ph_batch batch = batch_of(probe);
  ph_method* table = instance.table();
  check_plugin_status(table->forward_injection(table, &batch, 0, &views.table),
                      "forward_injection");
  require(all_finite(injection.adapter_prompts.data(), injection.adapter_prompts.size()),
          "forward_injection left adapter_prompts unwritten or wrote non-finite values");
  require(all_finite(injection.adapter_gates.data(), injection.adapter_gates.size()),
          "forward_injection left adapter_gates unwritten or wrote non-finite values");
  return injection;
}

// The injection's adapter prompts then gates, as one vector.
std::vector<double> flat_adapters(const xt::xtensor<float, 3>& prompts,
                                  const xt::xtensor<float, 1>& gates) {
  std::vector<double> v(prompts.begin(), prompts.end());
  v.insert(v.end(), gates.begin(), gates.end());
  return v;
}

}  // namespace

void check_adapter_prompts(const Context& ctx, Report& report) {
  Fixture f(ctx);
  auto instance = f.create(ctx.seed);
  const AdapterSpec a = adapter_spec(*instance);
  if (a.adapter_len == 0 && a.adapter_layers == 0)
    throw CheckSkipped("the plugin's spec has no adapter prompts (adapter_len 0)");
  const int n_layers = f.model.config.n_layers, dim = f.model.config.dim;
  require(a.adapter_len > 0 && a.adapter_len < f.model.config.max_positions,
          "adapter_len " + std::to_string(a.adapter_len) + " is not in [1, " +
              std::to_string(f.model.config.max_positions - 1) + "]");
  require(a.adapter_layers >= 1 && a.adapter_layers <= n_layers,
          "adapter_layers " + std::to_string(a.adapter_layers) + " is not in [1, " +
              std::to_string(n_layers) + "] (the model's layers)");
  ph_method* table = instance->table();
  require(PH_HAS(table, ph_method, backward_injection) && table->forward_injection &&
              table->backward_injection,
          "the spec has adapter prompts but the table has no forward_injection/backward_injection");

  std::mt19937_64 rng(ctx.seed);
  const Probe probe = make_probe(*instance, f, 2, rng);
  Injection injection = adapter_forward(*instance, probe, a, dim);
  report.note("adapter prompts [" + std::to_string(a.adapter_layers) + ", " +
              std::to_string(a.adapter_len) + ", " + std::to_string(dim) + "], gates [" +
              std::to_string(a.adapter_layers) + "], all written and finite");

  // The engine's gradient of prompts and gates. With PEFT's zero gates the prompts get
  // none, so the engine is checked at gates of 0.5 (noted).
  bool zero_gates = true;
  for (float g : injection.adapter_gates) zero_gates = zero_gates && g == 0.0f;
  if (zero_gates) {
    injection.adapter_gates.fill(0.5f);
    report.note("the plugin's gates are all 0 (PEFT's init): the engine is checked at 0.5");
  }
  InjectionGrad grad;
  double loss = 0.0;
  try {
    TrainingPass pass(f.model);
    loss = pass.forward(probe.sequences, injection);
    pass.backward(grad);
  } catch (const Error& e) {
    const std::string what = e.what();
    if (what.find("unsupported") != std::string::npos ||
        what.find("not supported") != std::string::npos)
      throw CheckSkipped(std::string("the engine reports adapter prompts unsupported: ") + what);
    throw;
  }
  if (grad.adapter_prompts.size() == 0 || grad.adapter_gates.size() == 0)
    throw CheckSkipped(
        "the engine does not implement the gated adapter attention yet (unsupported: it "
        "returned no gradient for the adapter prompts and gates)");
  const std::vector<double> g = flat_adapters(grad.adapter_prompts, grad.adapter_gates);
  require(all_finite(grad.adapter_prompts.data(), grad.adapter_prompts.size()) &&
              all_finite(grad.adapter_gates.data(), grad.adapter_gates.size()),
          "the engine's adapter gradients are not finite");
  const std::vector<double> base =
      flat_adapters(injection.adapter_prompts, injection.adapter_gates);
  const size_t n_prompts = injection.adapter_prompts.size();
  auto engine_loss_at = [&](const std::vector<double>& u, double step) {
    Injection moved = injection;
    for (size_t i = 0; i < base.size(); ++i) {
      float& x = i < n_prompts ? moved.adapter_prompts.data()[i]
                               : moved.adapter_gates.data()[i - n_prompts];
      x = (float)(base[i] + step * u[i]);
    }
    TrainingPass pass(f.model);
    return pass.forward(probe.sequences, moved);
  };
  report.note("engine: loss " + sci(loss));
  check_directions(g, kRandomDirections, rng, engine_loss_at, "engine adapter gradient", report);

  // The plugin's chain: backward_injection's parameter gradients against differences of
  // the loss of its own forward_injection (its own gates).
  instance->zero_grad();
  Injection own = adapter_forward(*instance, probe, a, dim);
  TrainingPass pass(f.model);
  pass.forward(probe.sequences, own);
  InjectionGrad own_grad;
  pass.backward(own_grad);
  const InjectionViews grads(own_grad);
  const ph_batch batch = batch_of(probe);
  check_plugin_status(table->backward_injection(table, &batch, &grads.table), "backward_injection");
  const std::vector<float> pg = flat_grads(*instance);
  require(all_finite(pg.data(), pg.size()), "backward_injection left non-finite gradients");
  const std::vector<double> param_grad(pg.begin(), pg.end());
  const std::vector<float> values = flat_values(*instance);
  auto plugin_loss_at = [&](const std::vector<double>& u, double step) {
    std::vector<float> moved(values.size());
    for (size_t i = 0; i < values.size(); ++i) moved[i] = (float)(values[i] + step * u[i]);
    set_flat_values(*instance, moved);
    const Injection at = adapter_forward(*instance, probe, a, dim);
    set_flat_values(*instance, values);
    TrainingPass p(f.model);
    return p.forward(probe.sequences, at);
  };
  check_directions(param_grad, kRandomDirections, rng, plugin_loss_at,
                   "parameter gradient through the adapters", report);
}

namespace {

// ------------------------------------------------------------------ score_labels

// The host's view of one probe sequence for score_labels: slots, tokens, kinds (the
// scored tokens PH_TOKEN_OUTPUT, the other real ones PH_TOKEN_INPUT), labels, weights.
struct ScoredArrays {
  std::vector<int64_t> slots, tokens, kinds, labels;
  std::vector<float> weights;
  ph_scored_sequence table() {
    return ph_scored_sequence{sizeof(ph_scored_sequence),
                              (int64_t)slots.size(),
                              slots.data(),
                              tokens.data(),
                              kinds.data(),
                              labels.data(),
                              weights.data()};
  }
};

ScoredArrays scored_arrays(const Sequence& s) {
  ScoredArrays a;
  for (size_t t = 0; t < s.tokens.size(); ++t) {
    const bool v = is_virtual(s.tokens[t]);
    a.slots.push_back(v ? virtual_index(s.tokens[t]) : -1);
    a.tokens.push_back(v ? 0 : s.tokens[t]);
    a.kinds.push_back(v                             ? PH_TOKEN_OTHER
                      : s.labels[t] != kIgnoreLabel ? PH_TOKEN_OUTPUT
                                                    : PH_TOKEN_INPUT);
    a.labels.push_back(v ? kIgnoreLabel : s.labels[t]);
    a.weights.push_back(1.0f);
  }
  return a;
}

// Calls score_labels on fresh arrays of the probe and returns them.
std::vector<ScoredArrays> score(ph_method* table, const Probe& probe) {
  std::vector<ScoredArrays> arrays;
  for (const Sequence& s : probe.sequences) arrays.push_back(scored_arrays(s));
  std::vector<ph_scored_sequence> tables;
  for (ScoredArrays& a : arrays) tables.push_back(a.table());
  const ph_batch batch = batch_of(probe);
  check_plugin_status(table->score_labels(table, &batch, tables.data()), "score_labels");
  return arrays;
}

}  // namespace

void check_score_labels(const Context& ctx, Report& report) {
  Fixture f(ctx);
  auto instance = f.create(ctx.seed);
  ph_method* table = instance->table();
  if (!PH_HAS(table, ph_method, score_labels) || !table->score_labels)
    throw CheckSkipped("the plugin's table has no score_labels (a 1.0/1.1 table, or NULL)");
  std::mt19937_64 rng(ctx.seed);
  Probe probe = make_probe(*instance, f, 3, rng);
  const Injection injection = instance->forward(probe.size(), probe.task_ids, false);
  const std::vector<ScoredArrays> first = score(table, probe);
  const std::vector<ScoredArrays> second = score(table, probe);
  const int vocab = f.model.config.vocab_size;
  int scored = 0, scored_before = 0, at_start = 0;
  double low = INFINITY, high = -INFINITY;
  for (size_t b = 0; b < first.size(); ++b) {
    const ScoredArrays& a = first[b];
    for (size_t t = 0; t < a.labels.size(); ++t) {
      const std::string where = "sequence " + std::to_string(b) + " position " + std::to_string(t);
      const int64_t label = a.labels[t];
      require(label == kIgnoreLabel || (label >= 0 && label < vocab),
              where + ": label " + std::to_string(label) + " is neither -100 nor in [0, " +
                  std::to_string(vocab) + ")");
      require(std::isfinite(a.weights[t]) && a.weights[t] >= 0.0f,
              where + ": weight " + sci(a.weights[t]) + " is not finite and >= 0");
      require(
          a.labels[t] == second[b].labels[t] &&
              std::memcmp(&a.weights[t], &second[b].weights[t], sizeof(float)) == 0,
          where + ": a second call on the same batch rewrote it differently (not deterministic)");
      if (label == kIgnoreLabel) continue;
      // labels[t] is predicted from t - 1, so one at position 0 is never scored (PEFT's
      // CPT labels its first context row so): counted apart.
      if (t == 0) {
        ++at_start;
        continue;
      }
      ++scored;
      low = std::min(low, (double)a.weights[t]);
      high = std::max(high, (double)a.weights[t]);
    }
    for (int64_t label : probe.sequences[b].labels) scored_before += label != kIgnoreLabel;
  }
  if (at_start)
    report.note(std::to_string(at_start) +
                " sequences carry a label at position 0, which no position predicts (not scored)");
  // The engine takes the rewritten batch.
  for (size_t b = 0; b < first.size(); ++b) {
    probe.sequences[b].labels.assign(first[b].labels.begin(), first[b].labels.end());
    probe.sequences[b].label_weights = first[b].weights;
  }
  TrainingPass pass(f.model);
  const double loss = pass.forward(probe.sequences, injection);
  require(std::isfinite(loss), "the loss of the rewritten batch is not finite");
  report.note(std::to_string(scored) + " labels scored after the rewrite (" +
              std::to_string(scored_before) + " before)" +
              (scored ? ", weights in [" + sci(low) + ", " + sci(high) + "]" : "") +
              "; two calls agree; loss " + sci(loss));
}

// ------------------------------------------------------------------ after_step

void check_after_step(const Context& ctx, Report& report) {
  Fixture f(ctx);
  // A copy of the instance (same seed), so the step is taken on parameters nobody else uses.
  auto copy = f.create(ctx.seed);
  ph_method* table = copy->table();
  if (!PH_HAS(table, ph_method, after_step) || !table->after_step)
    throw CheckSkipped("the plugin's table has no after_step (a 1.0/1.1 table, or NULL)");
  std::mt19937_64 rng(ctx.seed);
  const Probe probe = make_probe(*copy, f, 2, rng);
  probe_loss_and_gradient(*copy, f.model, probe);
  // A large optimizer step (10 in the largest coordinate, against the gradient; along
  // -sign where it is 0), then the hook.
  std::vector<float> values = flat_values(*copy);
  const std::vector<float> grads = flat_grads(*copy);
  float largest = 0.0f;
  for (float g : grads) largest = std::max(largest, std::fabs(g));
  for (size_t i = 0; i < values.size(); ++i)
    values[i] -= largest > 0.0f ? kLargeStep * grads[i] / largest : kLargeStep;
  set_flat_values(*copy, values);
  for (int64_t step = 0; step < 2; ++step)
    check_plugin_status(table->after_step(table, step), "after_step(" + std::to_string(step) + ")");
  const std::vector<float> after = flat_values(*copy);
  require(all_finite(after.data(), after.size()), "after_step left non-finite parameter values");
  size_t changed = 0;
  for (size_t i = 0; i < after.size(); ++i) changed += after[i] != values[i];
  const Injection injection = copy->forward(probe.size(), probe.task_ids, false);
  require(all_finite(injection), "forward after after_step wrote non-finite values");
  report.note("after a step of " + sci(kLargeStep) +
              " in the largest coordinate, after_step(0) and (1) changed " +
              std::to_string(changed) + " of " + std::to_string(after.size()) +
              " values; all finite");
}

// ------------------------------------------------------------------ teacher

void check_teacher(const Context& ctx, Report& report) {
  Fixture f(ctx);
  auto instance = f.create(ctx.seed);
  ph_method* table = instance->table();
  if (!PH_HAS(table, ph_method, teacher) || !table->teacher)
    throw CheckSkipped("the plugin's table has no teacher (a 1.0/1.1 table, or NULL)");
  const ph_teacher_spec* t = table->teacher(table);
  if (!t) throw CheckSkipped("teacher() returns NULL: the method trains on the labels");
  require(t->struct_size >= offsetof(ph_teacher_spec, n_context_ids) + sizeof(int64_t),
          "the teacher spec is too small (struct_size " + std::to_string(t->struct_size) + ")");
  require(t->top_k >= 1, "top_k " + std::to_string(t->top_k) + " < 1");
  require(std::isfinite(t->temperature) && t->temperature >= 0.0f,
          "temperature " + sci(t->temperature) + " is not finite and >= 0");
  require(t->n_context_ids >= 0, "n_context_ids " + std::to_string(t->n_context_ids) + " < 0");
  require(t->n_context_ids == 0 || t->context_ids, "context_ids is NULL with n_context_ids > 0");
  if (t->struct_size >= offsetof(ph_teacher_spec, labeled_only) + sizeof(int32_t))
    require(t->labeled_only == 0 || t->labeled_only == 1,
            "labeled_only is " + std::to_string(t->labeled_only) + ", not 0 or 1");
  const int vocab = f.model.config.vocab_size;
  for (int64_t i = 0; i < t->n_context_ids; ++i)
    require(t->context_ids[i] >= 0 && t->context_ids[i] < vocab,
            "context id " + std::to_string(i) + " is " + std::to_string(t->context_ids[i]) +
                ", not in [0, " + std::to_string(vocab) + ") (the vocabulary)");
  const ph_teacher_spec* again = table->teacher(table);
  require(again && again->top_k == t->top_k && again->n_context_ids == t->n_context_ids &&
              again->temperature == t->temperature,
          "a second teacher() call returned another spec (it must be constant)");
  report.note("top_k " + std::to_string(t->top_k) + ", temperature " + sci(t->temperature) + ", " +
              std::to_string(t->n_context_ids) + " context ids in the vocabulary");
}

}  // namespace ph::validate
