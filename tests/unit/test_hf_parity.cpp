// Parity with the real transformers + PEFT libraries (float64) on every case of the
// Hugging Face fixtures: tests/fixtures/hf (a copy of shared/fixtures-hf) and, when set,
// the folder $PROMPTHOST_FIXTURES_HF of the same format. For each case:
//   - engine: fed expect.injection (and the case's classification head), the model gives
//     expect.loss, expect.logits and expect.grad_injection (and the head's expect.grad.*);
//   - plugin: the method plugin, configured by the case's adapter_config and holding its
//     param.*, gives expect.injection, and from expect.grad_injection every expect.grad.*
//     of its parameters;
// each within a relative L2 error of 1e-4. The batch is fed as the fixtures' README says
// PEFT feeds it (hf_case.h); padding is not computed on.
#include <catch.hpp>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "host/plugin/method_instance.h"
#include "host/plugin/method_options.h"
#include "host/plugin/plugin_discovery.h"
#include "host/trainer/adapter_files.h"
#include "hf_case.h"
#include "models/engine/engine.h"
#include "test_support.h"

namespace fs = std::filesystem;
using namespace ph;

namespace {

constexpr double kTolerance = 1e-4;


std::vector<fs::path> hf_case_files() {
  std::vector<fs::path> dirs = {fs::path(test::source_path("tests/fixtures/hf"))};
  if (const char* env = std::getenv("PROMPTHOST_FIXTURES_HF"); env && *env) dirs.push_back(env);
  std::vector<fs::path> files;
  for (const auto& dir : dirs) {
    REQUIRE(fs::is_directory(dir / "cases"));
    for (const auto& e : fs::directory_iterator(dir / "cases"))
      if (e.path().extension() == ".safetensors") files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  return files;
}

double rel(const std::vector<float>& got, const std::vector<float>& want) {
  REQUIRE(got.size() == want.size());
  return test::relative_l2(got.data(), want.data(), want.size());
}

void check_engine(const test::HfCase& c, const Model& model) {
  for (bool recompute : {false, true}) {
    INFO("engine" << (recompute ? " (recompute)" : ""));
    TrainingPass pass(model, PassOptions{recompute, true});
    const double loss = pass.forward(c.batch, c.injection);
    INFO("loss " << loss << ", reference " << c.loss);
    CHECK(std::abs(loss - c.loss) <= kTolerance * std::abs(c.loss));

    std::vector<float> logits;
    for (size_t b = 0; b < c.batch.size(); ++b) {
      const auto& lg = pass.logits().at(b);
      REQUIRE(lg.shape(0) == c.logit_rows[b]);
      logits.insert(logits.end(), lg.begin(), lg.end());
    }
    const double logit_err = rel(logits, c.logits);
    INFO("logits relative L2 " << logit_err);
    CHECK(logit_err <= kTolerance);

    InjectionGrad grad;
    pass.backward(grad);
    const double inj_err = rel(c.flat_injection_grad(grad), c.grad_injection);
    INFO("injection gradient relative L2 " << inj_err);
    CHECK(inj_err <= kTolerance);
    for (const auto& [name, want] : c.head_grads) {
      INFO("head gradient " << name);
      REQUIRE(grad.head.count(name));
      const auto& g = grad.head.at(name);
      const double err = rel(std::vector<float>(g.begin(), g.end()), want);
      INFO("relative L2 " << err);
      CHECK(err <= kTolerance);
    }
  }
}

void check_plugin(const test::HfCase& c, const SafetensorsFile& f, const Model& model) {
  INFO("plugin " << c.method);
  auto library = host::find_plugin(c.method, {});
  const auto options = host::resolve_options(library->descriptor(), c.config, {}, trainer::kPeftBaseFields);
  host::ModelHost model_host(model, nullptr);
  host::MethodInstance instance(library, model_host, options, 1);
  for (const auto& p : instance.parameters()) {
    INFO("parameter " << p.name);
    const auto values = test::floats(f, "param." + p.name);
    REQUIRE(values.size() == p.numel);
    std::copy(values.begin(), values.end(), p.value);
  }
  const int B = (int)c.batch.size();
  const Injection inj = instance.forward(B, c.task_ids, false);
  const double inj_err = rel(c.flat_injection(inj), test::floats(f, "expect.injection"));
  INFO("injection relative L2 " << inj_err);
  CHECK(inj_err <= kTolerance);

  instance.zero_grad();
  instance.backward(B, c.task_ids, c.injection_grad_from_reference(inj));
  for (const auto& p : instance.parameters()) {
    const auto want = test::floats(f, "expect.grad." + p.name);
    REQUIRE(want.size() == p.numel);
    const double err = test::relative_l2(p.grad, want.data(), p.numel);
    INFO("gradient of " << p.name << ": relative L2 " << err);
    CHECK(err <= kTolerance);
  }
}

}  // namespace

TEST_CASE("engine and plugins match transformers + PEFT on every Hugging Face fixture case",
          "[parity]") {
  const auto files = hf_case_files();
  REQUIRE(!files.empty());
  const fs::path own = fs::path(test::source_path("tests/fixtures/hf")) / "cases";
  // A section per case, named by the case (and by its folder when it is not the project's:
  // sections of the same name would run only once)
  for (const auto& file : files)
    DYNAMIC_SECTION(file.stem().string() << (file.parent_path() == own
                                                 ? std::string()
                                                 : " in " + file.parent_path().string())) {
    const SafetensorsFile f(file.string());
    const fs::path root = file.parent_path().parent_path();
    const Model model = load_model((root / "models" / f.metadata().at("arch")).string());
    const test::HfCase c = test::read_hf_case(f);
    INFO("case " << file.stem().string() << " (" << c.task_type << ")");
    check_engine(c, model);
    check_plugin(c, f, model);
  }
}
