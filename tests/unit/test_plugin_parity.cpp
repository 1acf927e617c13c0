// Parity of the method plugins with the PyTorch reference: for every case file in
// <fixtures>/cases (<fixtures> = tests/fixtures or $PROMPTHOST_FIXTURES), the plugin named
// by the case's "method" is created with the case's "config", its parameters are set
// from param.*, and
//   - its forward must give expect.injection,
//   - its backward, fed expect.grad_injection, must give every expect.grad.<name>,
//   - the engine, fed its injection, must give expect.loss,
// each to a relative L2 error of 1e-4 (float32 against the float64 reference).
#include <catch.hpp>

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "host/plugin/method_instance.h"
#include "host/plugin/method_options.h"
#include "host/plugin/plugin_discovery.h"
#include "models/engine/engine.h"
#include "models/loader/safetensors.h"
#include "test_support.h"

namespace fs = std::filesystem;
using namespace ph;

namespace {

constexpr double kTolerance = 1e-4;

// PEFT's config fields that describe the model, not the method.
const std::vector<std::string> kBaseFields = {"peft_type", "task_type", "token_dim",
                                              "num_attention_heads", "num_layers"};

std::vector<float> floats(const SafetensorsFile& f, const std::string& name) {
  const FloatTensor t = f.to_float(name);
  return std::vector<float>(t.data, t.data + t.numel);
}

}  // namespace

TEST_CASE("method plugins match the PyTorch reference on every fixture case", "[parity]") {
  const fs::path dir = fs::path(test::fixtures_dir()) / "cases";
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().extension() == ".safetensors") files.push_back(e.path());
  std::sort(files.begin(), files.end());
  REQUIRE(!files.empty());

  for (const auto& file : files) DYNAMIC_SECTION(file.stem().string()) {
    const SafetensorsFile f(file.string());
    const std::string arch = f.metadata().at("arch"), method = f.metadata().at("method");
    INFO("case " << file.stem().string() << " (plugin " << method << ")");
    const Model model = load_model((fs::path(test::fixtures_dir()) / "models" / arch).string());
    const ModelConfig& mc = model.config;
    auto library = host::find_plugin(method, {});
    const auto config = nlohmann::json::parse(f.metadata().at("config"));
    const auto options = host::resolve_options(library->descriptor(), config, {}, kBaseFields);
    host::ModelHost model_host(model, nullptr);
    host::MethodInstance instance(library, model_host, options, 1);

    // parameters from the case
    for (const auto& p : instance.parameters()) {
      INFO("parameter " << p.name);
      const auto values = floats(f, "param." + p.name);
      REQUIRE(values.size() == p.numel);
      std::copy(values.begin(), values.end(), p.value);
    }

    // inputs: the case's rows without their right padding
    const auto ids = f.to_int64("input.input_ids");
    const auto mask = f.to_int64("input.attention_mask");
    const auto labels = f.to_int64("input.labels");
    const int B = (int)f.info("input.input_ids").shape[0], S = (int)f.info("input.input_ids").shape[1];
    std::vector<int64_t> task_ids;
    if (f.find("input.task_ids")) task_ids = f.to_int64("input.task_ids");

    // forward: the injection
    const Injection inj = instance.forward(B, task_ids, false);
    const auto want = floats(f, "expect.injection");
    const bool prefix = method == "prefix_tuning";
    const std::vector<float> got =
        prefix ? test::prefix_to_flat(inj.prefix)
               : std::vector<float>(inj.virtual_tokens.begin(), inj.virtual_tokens.end());
    REQUIRE(got.size() == want.size());
    const double inj_err = test::relative_l2(got.data(), want.data(), want.size());
    INFO("injection relative L2 " << inj_err);
    CHECK(inj_err <= kTolerance);

    // backward: parameter gradients from the reference's injection gradient
    const auto grad_inj = floats(f, "expect.grad_injection");
    InjectionGrad g;
    if (prefix) {
      g.prefix = test::prefix_from_flat(grad_inj.data(), (int)inj.prefix.shape(3), mc.n_layers,
                                        mc.n_kv_heads, mc.head_dim);
    } else {
      g.virtual_tokens = xt::zeros<float>(inj.virtual_tokens.shape());
      REQUIRE(g.virtual_tokens.size() == grad_inj.size());
      std::copy(grad_inj.begin(), grad_inj.end(), g.virtual_tokens.begin());
    }
    instance.zero_grad();
    instance.backward(B, task_ids, g);
    for (const auto& p : instance.parameters()) {
      const auto want_grad = floats(f, "expect.grad." + p.name);
      REQUIRE(want_grad.size() == p.numel);
      const double err = test::relative_l2(p.grad, want_grad.data(), p.numel);
      INFO("gradient of " << p.name << ": relative L2 " << err);
      CHECK(err <= kTolerance);
    }

    // end to end: the engine with the plugin's injection gives the reference loss
    std::vector<Sequence> batch;
    const int n_virtual = inj.virtual_tokens.size() ? (int)inj.virtual_tokens.shape(1) : 0;
    for (int b = 0; b < B; ++b) {
      Sequence s;
      for (int k = 0; k < n_virtual; ++k) {
        s.tokens.push_back(virtual_slot(k));
        s.labels.push_back(kIgnoreLabel);
      }
      for (int t = 0; t < S; ++t) {
        if (!mask[b * S + t]) continue;
        s.tokens.push_back((int32_t)ids[b * S + t]);
        s.labels.push_back((int32_t)labels[b * S + t]);
      }
      batch.push_back(std::move(s));
    }
    TrainingPass pass(model);
    const double loss = pass.forward(batch, inj);
    const double want_loss = f.to_float("expect.loss").data[0];
    INFO("loss " << loss << ", reference " << want_loss);
    CHECK(std::abs(loss - want_loss) <= kTolerance * std::abs(want_loss));
  }
}
