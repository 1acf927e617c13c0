// Parity of LLaMA-Adapter (PEFT's ADAPTION_PROMPT) with PEFT 0.20 + transformers (float64)
// on every adaption_prompt case of the family fixtures (tests/fixtures/family, README §4,
// and $PROMPTHOST_FIXTURES_FAMILY). For each case:
//   - engine: fed param.* as the adapter prompts and gates, the model gives expect.loss,
//     expect.logits and every expect.grad.*; with recompute too; the prompt through the
//     adapted layer's own key/value projection is expect.adapter_k/v;
//   - plugin: configured by the case's adapter_config and holding param.*, its injection
//     through the engine and its backward give every expect.grad.* on its parameters; its
//     export has PEFT's tensor names and shapes and adapter_config.json PEFT's 10 keys;
//   - PEFT's adapter folder: opened as `prompthost eval` opens one, it reproduces
//     expect32.loss and expect32.logits on the float32 model;
// each within a relative L2 error of 1e-4. Right padding is not computed on.
#include <catch.hpp>

#include <filesystem>
#include <fstream>

#include <xtensor/xview.hpp>

#include "family_case.h"
#include "hf_case.h"
#include "host/plugin/method_instance.h"
#include "host/plugin/method_options.h"
#include "host/plugin/plugin_discovery.h"
#include "host/trainer/adapter_files.h"
#include "host/trainer/adapter_loading.h"
#include "models/engine/engine.h"
#include "models/engine/linear.h"
#include "test_support.h"

namespace fs = std::filesystem;
using namespace ph;

namespace {

constexpr double kTolerance = 1e-4;

using test::rel;

struct AdapterCase {
  std::vector<Sequence> batch;
  std::vector<size_t> real;                           // per row: its unpadded length
  std::vector<int> adapted_layers;                    // model layers, in PEFT's order
  std::vector<std::string> prompt_names, gate_names;  // param.* / expect.grad.* names
  Injection injection;
};

AdapterCase read_case(const test::FamilyCaseFile& fc, const SafetensorsFile& f,
                      const Model& model) {
  AdapterCase c;
  const auto layout = nlohmann::json::parse(f.metadata().at("layout"));
  c.adapted_layers = layout.at("adapted_layers").get<std::vector<int>>();
  const std::string path = fc.arch.rfind("gpt2", 0) == 0 ? "base_model.model.transformer.h."
                                                         : "base_model.model.model.layers.";
  const std::string target = fc.config.at("target_modules").get<std::string>();
  const size_t La = c.adapted_layers.size(), len = fc.config.at("adapter_len").get<size_t>();
  REQUIRE(La == fc.config.at("adapter_layers").get<size_t>());
  c.injection.adapter_prompts = xt::zeros<float>({La, len, (size_t)model.config.dim});
  c.injection.adapter_gates = xt::zeros<float>({La});
  for (size_t i = 0; i < La; ++i) {
    REQUIRE(c.adapted_layers[i] == model.config.n_layers - (int)La + (int)i);  // the top layers
    const std::string at = path + std::to_string(c.adapted_layers[i]) + "." + target;
    c.prompt_names.push_back(at + ".adaption_prompt");
    c.gate_names.push_back(at + ".adaption_gate");
    const auto prompt = test::floats(f, "param." + c.prompt_names[i]);
    REQUIRE(prompt.size() == len * model.config.dim);
    std::copy(prompt.begin(), prompt.end(), &c.injection.adapter_prompts(i, 0, 0));
    c.injection.adapter_gates(i) = test::floats(f, "param." + c.gate_names[i]).at(0);
  }
  const auto ids = f.to_int64("input.input_ids");
  const auto mask = f.to_int64("input.attention_mask");
  const auto labels = f.to_int64("input.labels");
  const size_t B = f.info("input.input_ids").shape[0], S = f.info("input.input_ids").shape[1];
  for (size_t b = 0; b < B; ++b) {
    Sequence s;
    for (size_t t = 0; t < S; ++t) {
      if (!mask[b * S + t]) continue;
      s.tokens.push_back((int32_t)ids[b * S + t]);
      s.labels.push_back((int32_t)labels[b * S + t]);
    }
    c.real.push_back(s.tokens.size());
    c.batch.push_back(std::move(s));
  }
  return c;
}

// The real rows of `name` ([B, S, V] logits) in batch order.
std::vector<float> real_logits(const SafetensorsFile& f, const std::string& name,
                               const AdapterCase& c) {
  const auto all = test::floats(f, name);
  const auto& shape = f.info(name).shape;
  const size_t S = shape[1], V = shape[2];
  std::vector<float> out;
  for (size_t b = 0; b < c.real.size(); ++b)
    out.insert(out.end(), all.begin() + b * S * V, all.begin() + (b * S + c.real[b]) * V);
  return out;
}

std::vector<float> pass_logits(const TrainingPass& pass) {
  std::vector<float> out;
  for (const auto& lg : pass.logits()) out.insert(out.end(), lg.begin(), lg.end());
  return out;
}

void check_forward(const TrainingPass& pass, double loss, const SafetensorsFile& f,
                   const AdapterCase& c, const std::string& prefix) {
  const double want = f.to_float(prefix + ".loss").data[0];
  INFO("loss " << loss << ", PEFT's " << want);
  CHECK(std::abs(loss - want) <= kTolerance * std::abs(want));
  const double err = rel(pass_logits(pass), real_logits(f, prefix + ".logits", c));
  INFO("logits relative L2 " << err);
  CHECK(err <= kTolerance);
}

void check_engine(const SafetensorsFile& f, const AdapterCase& c, const Model& model) {
  for (bool recompute : {false, true}) {
    INFO("engine" << (recompute ? " (recompute)" : ""));
    TrainingPass pass(model, PassOptions{recompute, true});
    check_forward(pass, pass.forward(c.batch, c.injection), f, c, "expect");
    InjectionGrad grad;
    pass.backward(grad);
    for (size_t i = 0; i < c.adapted_layers.size(); ++i) {
      const xt::xtensor<float, 2> gp = xt::view(grad.adapter_prompts, i);
      const double ep =
          rel({gp.begin(), gp.end()}, test::floats(f, "expect.grad." + c.prompt_names[i]));
      const double eg =
          rel({grad.adapter_gates(i)}, test::floats(f, "expect.grad." + c.gate_names[i]));
      INFO("layer " << c.adapted_layers[i] << ": prompt gradient " << ep << ", gate " << eg);
      CHECK(ep <= kTolerance);
      CHECK(eg <= kTolerance);
    }
  }
}

// The prompt through the adapted layer's own k/v projection: expect.adapter_k/v.<l>
// [kv_heads, len, head_dim].
void check_adapter_kv(const SafetensorsFile& f, const AdapterCase& c, const Model& model) {
  const ModelConfig& cfg = model.config;
  const size_t len = c.injection.adapter_prompts.shape(1), hd = cfg.head_dim;
  for (size_t i = 0; i < c.adapted_layers.size(); ++i) {
    const int l = c.adapted_layers[i];
    std::vector<float> kv(len * cfg.qkv_dim());
    linear_forward(model.layers[l].qkv, (int)len, &c.injection.adapter_prompts(i, 0, 0), cfg.dim,
                   kv.data(), cfg.qkv_dim());
    for (int part = 0; part < 2; ++part) {
      std::vector<float> got;
      for (int g = 0; g < cfg.n_kv_heads; ++g)
        for (size_t j = 0; j < len; ++j) {
          const float* row = kv.data() + j * cfg.qkv_dim() + cfg.q_dim() + part * cfg.kv_dim();
          got.insert(got.end(), row + g * hd, row + (g + 1) * hd);
        }
      const std::string name =
          std::string(part ? "expect.adapter_v." : "expect.adapter_k.") + std::to_string(l);
      const double err = rel(got, test::floats(f, name));
      INFO(name << " relative L2 " << err);
      CHECK(err <= kTolerance);
    }
  }
}

void check_plugin(const test::FamilyCaseFile& fc, const SafetensorsFile& f, const AdapterCase& c,
                  const Model& model) {
  INFO("plugin adaption_prompt");
  auto library = host::find_plugin("adaption_prompt", {});
  const auto options =
      host::resolve_options(library->descriptor(), fc.config, {}, trainer::kPeftBaseFields);
  host::ModelHost model_host(model, nullptr);
  host::MethodInstance instance(library, model_host, options, 1);
  REQUIRE(instance.parameters().size() == 2 * c.adapted_layers.size());
  for (const auto& p : instance.parameters()) {
    INFO("parameter " << p.name);
    const auto values = test::floats(f, "param." + p.name);
    REQUIRE(values.size() == p.numel);
    std::copy(values.begin(), values.end(), p.value);
  }
  const int B = (int)c.batch.size();
  const Injection inj = instance.forward(B, {}, true);
  TrainingPass pass(model, PassOptions{false, true});
  check_forward(pass, pass.forward(c.batch, inj), f, c, "expect");
  InjectionGrad grad;
  pass.backward(grad);
  instance.zero_grad();
  instance.backward(B, {}, grad);
  for (const auto& p : instance.parameters()) {
    const auto want = test::floats(f, "expect.grad." + p.name);
    REQUIRE(want.size() == p.numel);
    const double err = test::relative_l2(p.grad, want.data(), p.numel);
    INFO("gradient of " << p.name << ": relative L2 " << err);
    CHECK(err <= kTolerance);
  }

  // the export as PEFT writes it: the same tensor names and shapes, the same config keys
  const std::string dir = test::temp_dir("family-adaption-" + fc.arch) + "/adapter";
  trainer::write_adapter(dir, instance, model.config, "models/" + fc.arch, {}, nullptr);
  const SafetensorsFile ours(dir + "/adapter_model.safetensors");
  const SafetensorsFile peft((fc.adapter_dir() / "adapter_model.safetensors").string());
  REQUIRE(ours.tensors().size() == peft.tensors().size());
  for (size_t i = 0; i < peft.tensors().size(); ++i) {
    CHECK(ours.tensors()[i].name == peft.tensors()[i].name);
    CHECK(ours.tensors()[i].shape == peft.tensors()[i].shape);
  }
  const auto our_config = nlohmann::json::parse(std::ifstream(dir + "/adapter_config.json"));
  const auto peft_config =
      nlohmann::json::parse(std::ifstream(fc.adapter_dir() / "adapter_config.json"));
  REQUIRE(our_config.size() == 10);
  for (const auto& [key, value] : peft_config.items()) {
    INFO("adapter_config.json key " << key);
    REQUIRE(our_config.contains(key));
    if (key != "base_model_name_or_path" && key != "inference_mode")
      CHECK(our_config[key] == value);
  }
}

// PEFT's own folder, opened as the CLI opens an adapter, on the float32 model.
void check_peft_adapter(const test::FamilyCaseFile& fc, const SafetensorsFile& f,
                        const AdapterCase& c, const Model& model) {
  INFO("PEFT adapter " << fc.adapter_dir());
  host::ModelHost model_host(model, nullptr);
  const trainer::LoadedAdapter loaded =
      trainer::open_adapter(fc.adapter_dir().string(), model_host, {});
  const Injection inj = loaded.method->forward((int64_t)c.batch.size(), {}, false);
  TrainingPass pass(model, PassOptions{false, true});
  check_forward(pass, pass.forward(c.batch, inj), f, c, "expect32");
}

}  // namespace

TEST_CASE("LLaMA-Adapter matches PEFT's ADAPTION_PROMPT on every family fixture case", "[parity]") {
  const auto cases = test::family_cases("adaption_prompt", "forward");
  REQUIRE(cases.size() >= 2);
  for (const auto& fc : cases) DYNAMIC_SECTION(fc.file.string()) {
      REQUIRE(fc.kind == "forward");
      const SafetensorsFile f(fc.file.string());
      const Model model = load_model(fc.model_dir().string());
      const AdapterCase c = read_case(fc, f, model);
      check_engine(f, c, model);
      check_adapter_kv(f, c, model);
      check_plugin(fc, f, c, model);
      check_peft_adapter(fc, f, c, model);
    }
}

TEST_CASE("adaption_prompt is refused on a family PEFT does not adapt, naming it", "[parity]") {
  const Model model = load_model(test::source_path("tests/fixtures/hf/models/bloom-tiny"));
  auto library = host::find_plugin("adaption_prompt", {});
  const auto options = host::resolve_options(library->descriptor(), nlohmann::json::object(), {});
  host::ModelHost model_host(model, nullptr);
  CHECK_THROWS_WITH(host::MethodInstance(library, model_host, options, 1),
                    Catch::Contains("supports the llama and gpt2 families, not bloom"));
}
