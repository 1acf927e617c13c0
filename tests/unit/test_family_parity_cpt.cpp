// Parity with PEFT 0.20's CPT on every CPT case of the family fixtures (tests/fixtures/family
// and $PROMPTHOST_FIXTURES_FAMILY; README §3 says how PEFT computes it). Per case:
//   - engine: fed expect.injection with PEFT's labels (expect.cpt_labels, the context's
//     label tokens included) and loss weights (expect.cpt_loss_weights), it gives
//     expect.loss, the logits at the real positions (expect.logits) and at the context's
//     virtual positions (expect.context_logits), and expect.grad_injection;
//   - plugin: holding param.delta_embedding.weight (outside its balls), it gives
//     expect.injection (embedding + projected delta); its score_labels, fed the rows'
//     input_type_mask as token kinds, gives PEFT's labels and weights; from
//     expect.grad_injection, the masked expect.grad.delta_embedding.weight;
//   - the recorded step: from step.delta_before, the plugin's gradient (step.grad) and
//     plain SGD with step.lr, after_step gives step.delta_after_projection and the export
//     step.prompt_embeddings;
//   - PEFT's adapter folder opened as the command line opens it, on the float32 model,
//     reproduces expect32.loss / logits / context_logits.
// Everything within 1e-4 relative L2. Right padding is not computed on.
#include <catch.hpp>

#include <algorithm>
#include <cmath>

#include "family_case.h"
#include "hf_case.h"
#include "host/plugin/method_instance.h"
#include "host/plugin/method_options.h"
#include "host/plugin/plugin_discovery.h"
#include "host/trainer/adapter_files.h"
#include "host/trainer/adapter_loading.h"
#include "models/engine/engine.h"
#include "test_support.h"

using namespace ph;

namespace {

constexpr double kTolerance = 1e-4;

using test::rel;

// One CPT case as the engine's batch: per row the n context slots, then the real tokens.
struct CptCase {
  int n = 0, B = 0, S = 0;
  std::vector<int> lengths;                 // real tokens per row
  std::vector<Sequence> host_batch;         // the caller's labels (-100 at the slots)
  std::vector<std::vector<int64_t>> kinds;  // input_type_mask (PEFT's default: all 4)
  std::vector<Sequence> peft_batch;         // PEFT's cpt_labels and loss weights
  Injection injection;                      // expect.injection as [1, n, dim]
};

CptCase read_cpt_case(const SafetensorsFile& f) {
  CptCase c;
  const auto ids = f.to_int64("input.input_ids");
  const auto mask = f.to_int64("input.attention_mask");
  const auto labels = f.to_int64("input.labels");
  const auto cpt_labels = f.to_int64("expect.cpt_labels");
  const std::vector<float> weights = test::floats(f, "expect.cpt_loss_weights");
  std::vector<int64_t> types;
  if (f.find("input.input_type_mask")) types = f.to_int64("input.input_type_mask");
  c.B = (int)f.info("input.input_ids").shape[0];
  c.S = (int)f.info("input.input_ids").shape[1];
  c.n = (int)f.info("input.cpt_token_ids").shape[0];
  const int W = c.n + c.S;  // PEFT's row width: context ++ input
  for (int b = 0; b < c.B; ++b) {
    Sequence host, peft;
    std::vector<int64_t> kinds;
    for (int k = 0; k < c.n; ++k) {
      host.tokens.push_back(virtual_slot(k));
      host.labels.push_back(kIgnoreLabel);
      kinds.push_back(PH_TOKEN_OTHER);
    }
    int len = 0;
    for (int t = 0; t < c.S; ++t) {
      if (!mask[b * c.S + t]) continue;
      host.tokens.push_back((int32_t)ids[b * c.S + t]);
      host.labels.push_back((int32_t)labels[b * c.S + t]);
      kinds.push_back(types.empty() ? (int64_t)PH_TOKEN_OUTPUT : types[b * c.S + t]);
      ++len;
    }
    peft.tokens = host.tokens;
    for (int t = 0; t < c.n + len; ++t) {
      peft.labels.push_back((int32_t)cpt_labels[b * W + t]);
      // weights[t-1] belongs to the target at t (PEFT shifts by one)
      peft.label_weights.push_back(t == 0 ? 1.0f : weights[b * (W - 1) + t - 1]);
    }
    c.lengths.push_back(len);
    c.host_batch.push_back(host);
    c.kinds.push_back(kinds);
    c.peft_batch.push_back(peft);
  }
  const FloatTensor inj = f.to_float("expect.injection");
  c.injection.virtual_tokens =
      xt::zeros<float>({(size_t)1, (size_t)c.n, (size_t)inj.shape.back()});
  std::copy_n(inj.data, inj.numel, c.injection.virtual_tokens.data());
  return c;
}

// The rows of `pass.logits()` split as the fixtures store them: context positions of
// every row, then real positions, in batch order.
void split_logits(const TrainingPass& pass, const CptCase& c, std::vector<float>& context,
                  std::vector<float>& real) {
  for (int b = 0; b < c.B; ++b) {
    const auto& lg = pass.logits().at(b);
    REQUIRE(lg.shape(0) == (size_t)(c.n + c.lengths[b]));
    const size_t V = lg.shape(1);
    context.insert(context.end(), lg.begin(), lg.begin() + c.n * V);
    real.insert(real.end(), lg.begin() + c.n * V, lg.end());
  }
}

// expect.logits-like [B, S(or n), V] with the padded positions of each row dropped.
std::vector<float> unpadded(const SafetensorsFile& f, const std::string& name, const CptCase& c) {
  const std::vector<float> all = test::floats(f, name);
  const auto& shape = f.info(name).shape;
  const size_t T = shape[1], V = shape[2];
  std::vector<float> out;
  for (int b = 0; b < c.B; ++b) {
    const size_t keep = T == (size_t)c.n ? T : (size_t)c.lengths[b];
    out.insert(out.end(), all.begin() + b * T * V, all.begin() + (b * T + keep) * V);
  }
  return out;
}

// Loss and logits of `batch` with `injection` against the file's `prefix` (expect or
// expect32) results.
void check_forward(const SafetensorsFile& f, const CptCase& c, const Model& model,
                   const std::vector<Sequence>& batch, const Injection& injection,
                   const std::string& prefix, bool recompute, InjectionGrad* grad) {
  PassOptions options;
  options.recompute = recompute;
  options.all_logits = true;
  options.virtual_logits = true;
  TrainingPass pass(model, options);
  const double loss = pass.forward(batch, injection);
  const double want = f.to_float(prefix + ".loss").data[0];
  INFO(prefix << ".loss " << want << ", got " << loss);
  CHECK(std::abs(loss - want) <= kTolerance * std::abs(want));
  std::vector<float> context, real;
  split_logits(pass, c, context, real);
  const double real_err = rel(real, unpadded(f, prefix + ".logits", c));
  const double context_err = rel(context, unpadded(f, prefix + ".context_logits", c));
  INFO("logits relative L2 " << real_err << ", context logits " << context_err);
  CHECK(real_err <= kTolerance);
  CHECK(context_err <= kTolerance);
  if (grad) pass.backward(*grad);
}

void check_engine(const SafetensorsFile& f, const CptCase& c, const Model& model) {
  for (bool recompute : {false, true}) {
    INFO("engine" << (recompute ? " (recompute)" : ""));
    InjectionGrad grad;
    check_forward(f, c, model, c.peft_batch, c.injection, "expect", recompute, &grad);
    const std::vector<float> got(grad.virtual_tokens.begin(), grad.virtual_tokens.end());
    const double err = rel(got, test::floats(f, "expect.grad_injection"));
    INFO("injection gradient relative L2 " << err);
    CHECK(err <= kTolerance);
  }
}

const host::ParameterView& delta_of(const host::MethodInstance& m) {
  REQUIRE(m.parameters().size() == 1);
  REQUIRE(m.parameters()[0].name == "delta_embedding.weight");
  return m.parameters()[0];
}

void set_values(const host::ParameterView& p, const std::vector<float>& values) {
  REQUIRE(values.size() == p.numel);
  std::copy(values.begin(), values.end(), p.value);
}

// The plugin's labels and weights for the caller's batch against PEFT's.
void check_scored(host::MethodInstance& instance, const CptCase& c) {
  std::vector<Sequence> batch = c.host_batch;
  instance.score_labels(batch, c.kinds, {}, 0);
  for (int b = 0; b < c.B; ++b) {
    INFO("row " << b);
    CHECK(batch[b].labels == c.peft_batch[b].labels);
    for (size_t t = 1; t < batch[b].labels.size(); ++t)
      if (batch[b].labels[t] != kIgnoreLabel) {
        INFO("position " << t);
        CHECK(batch[b].label_weights[t] == c.peft_batch[b].label_weights[t]);
      }
  }
}

void check_plugin(const SafetensorsFile& f, const test::FamilyCaseFile& file, const CptCase& c,
                  const Model& model) {
  INFO("plugin cpt");
  auto library = host::find_plugin("cpt", {});
  const auto options =
      host::resolve_options(library->descriptor(), file.config, {}, trainer::kPeftBaseFields);
  host::ModelHost model_host(model, nullptr);
  host::MethodInstance instance(library, model_host, options, 1);
  const host::ParameterView& delta = delta_of(instance);
  set_values(delta, test::floats(f, "param.delta_embedding.weight"));

  const Injection inj = instance.forward(c.B, {}, true);
  const std::vector<float> got(inj.virtual_tokens.begin(), inj.virtual_tokens.end());
  const double inj_err = rel(got, test::floats(f, "expect.injection"));
  INFO("injection relative L2 " << inj_err);
  CHECK(inj_err <= kTolerance);
  check_scored(instance, c);
  {  // the whole chain: the plugin's injection and labels through the engine
    std::vector<Sequence> batch = c.host_batch;
    instance.score_labels(batch, c.kinds, {}, 0);
    check_forward(f, c, model, batch, inj, "expect", false, nullptr);
  }

  instance.zero_grad();
  InjectionGrad g;
  g.virtual_tokens = xt::zeros<float>(inj.virtual_tokens.shape());
  const std::vector<float> want_inj_grad = test::floats(f, "expect.grad_injection");
  std::copy(want_inj_grad.begin(), want_inj_grad.end(), g.virtual_tokens.begin());
  instance.backward(c.B, {}, g);
  const double grad_err = test::relative_l2(
      delta.grad, test::floats(f, "expect.grad.delta_embedding.weight").data(), delta.numel);
  INFO("masked delta gradient relative L2 " << grad_err);
  CHECK(grad_err <= kTolerance);
}

// step.*: one SGD step from the projected delta, then after_step's projection.
void check_step(const SafetensorsFile& f, const test::FamilyCaseFile& file, const Model& model) {
  INFO("the recorded step");
  auto library = host::find_plugin("cpt", {});
  const auto options =
      host::resolve_options(library->descriptor(), file.config, {}, trainer::kPeftBaseFields);
  host::ModelHost model_host(model, nullptr);
  host::MethodInstance instance(library, model_host, options, 1);
  const host::ParameterView& delta = delta_of(instance);
  set_values(delta, test::floats(f, "step.delta_before"));
  const CptCase c = read_cpt_case(f);
  instance.zero_grad();
  InjectionGrad g;
  g.virtual_tokens = xt::zeros<float>({(size_t)1, (size_t)c.n, (size_t)model.config.dim});
  const std::vector<float> want_inj_grad = test::floats(f, "expect.grad_injection");
  std::copy(want_inj_grad.begin(), want_inj_grad.end(), g.virtual_tokens.begin());
  instance.backward(c.B, {}, g);
  const std::vector<float> grad(delta.grad, delta.grad + delta.numel);
  CHECK(rel(grad, test::floats(f, "step.grad")) <= kTolerance);

  const float lr = f.to_float("step.lr").data[0];
  for (size_t i = 0; i < delta.numel; ++i) delta.value[i] -= lr * delta.grad[i];
  const std::vector<float> stepped(delta.value, delta.value + delta.numel);
  CHECK(rel(stepped, test::floats(f, "step.delta_after_step")) <= kTolerance);
  instance.after_step(0);
  const std::vector<float> projected(delta.value, delta.value + delta.numel);
  const double err = rel(projected, test::floats(f, "step.delta_after_projection"));
  INFO("after_step's projection relative L2 " << err);
  CHECK(err <= kTolerance);
  // the step moved rows out of their balls: without the projection the test would fail
  CHECK(rel(stepped, test::floats(f, "step.delta_after_projection")) > kTolerance);

  const auto adapter = instance.export_adapter();
  REQUIRE(adapter.tensors.count("prompt_embeddings"));
  const double export_err = rel(adapter.tensors.at("prompt_embeddings").second,
                                test::floats(f, "step.prompt_embeddings"));
  INFO("exported prompt_embeddings relative L2 " << export_err);
  CHECK(export_err <= kTolerance);
}

// PEFT's adapter folder, opened as `prompthost eval --adapter` opens it, on float32.
void check_adapter(const SafetensorsFile& f, const test::FamilyCaseFile& file, const CptCase& c,
                   const Model& model) {
  INFO("PEFT's adapter " << file.adapter_dir());
  host::ModelHost model_host(model, nullptr);
  trainer::LoadedAdapter loaded =
      trainer::open_adapter(file.adapter_dir().string(), model_host, {});
  REQUIRE(loaded.method->library().name() == std::string("cpt"));
  const Injection inj = loaded.method->forward(c.B, {}, false);
  std::vector<Sequence> batch = c.host_batch;
  loaded.method->score_labels(batch, c.kinds, {}, 0);
  check_forward(f, c, model, batch, inj, "expect32", false, nullptr);
  CHECK(loaded.info.peft_config.size() == 21);
}

}  // namespace

TEST_CASE("CPT: engine, plugin, projection step and PEFT's adapters match PEFT on every case",
          "[parity]") {
  const auto cases = test::family_cases("cpt");
  REQUIRE(!cases.empty());
  for (const auto& file : cases)
    DYNAMIC_SECTION(file.arch << "__" << file.case_name << " in " << file.root.string()) {
      REQUIRE(file.kind == "forward");
      const SafetensorsFile f(file.file.string());
      const Model model = load_model(file.model_dir().string());
      const CptCase c = read_cpt_case(f);
      check_engine(f, c, model);
      check_plugin(f, file, c, model);
      check_step(f, file, model);
      check_adapter(f, file, c, model);
    }
}
