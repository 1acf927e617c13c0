// Parity of the engine with the PyTorch reference (reference/make_fixtures.py in the
// shared research folder): every case file in <fixtures>/cases/*.safetensors gives the
// model (metadata "arch" -> <fixtures>/models/<arch>/), the inputs, the injection the
// method produced, and the expected logits, loss and injection gradient computed in
// float64. Float32 here must agree to a relative L2 error of 1e-4.
#include <catch.hpp>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "models/engine/engine.h"
#include "models/loader/safetensors.h"
#include "test_support.h"

namespace fs = std::filesystem;
using namespace ph;

namespace {

constexpr double kTolerance = 1e-4;

struct Case {
  std::string name, arch, method;
  std::vector<Sequence> batch;
  Injection injection;
  FloatTensor logits, loss, grad_injection;
  std::vector<int64_t> ids_shape;
  std::vector<int> lengths;
};

Case read_case(const std::string& path, const Model& model) {
  SafetensorsFile f(path);
  Case c;
  c.name = fs::path(path).stem().string();
  c.arch = f.metadata().at("arch");
  c.method = f.metadata().at("method");
  const auto ids = f.to_int64("input.input_ids");
  const auto mask = f.to_int64("input.attention_mask");
  const auto labels = f.to_int64("input.labels");
  c.ids_shape = f.info("input.input_ids").shape;
  const int B = (int)c.ids_shape[0], S = (int)c.ids_shape[1];
  const FloatTensor inj = f.to_float("expect.injection");
  const ModelConfig& mc = model.config;
  const bool prefix = c.method == "prefix_tuning";
  int n = 0;
  if (prefix) {
    n = (int)inj.shape[0];
    c.injection.prefix = test::prefix_from_flat(inj.data, n, mc.n_layers, mc.n_kv_heads, mc.head_dim);
  } else {
    const bool per_example = inj.shape.size() == 3;
    const size_t sets = per_example ? inj.shape[0] : 1;
    n = (int)inj.shape[per_example ? 1 : 0];
    const size_t D = inj.shape.back();
    c.injection.virtual_tokens = xt::zeros<float>({sets, (size_t)n, D});
    std::copy_n(inj.data, inj.numel, c.injection.virtual_tokens.data());
  }
  for (int b = 0; b < B; ++b) {
    Sequence s;
    if (!prefix)
      for (int k = 0; k < n; ++k) {
        s.tokens.push_back(virtual_slot(k));
        s.labels.push_back(kIgnoreLabel);
      }
    int len = 0;
    for (int t = 0; t < S; ++t) {
      if (!mask[b * S + t]) continue;  // right padding: not computed at all
      s.tokens.push_back((int32_t)ids[b * S + t]);
      s.labels.push_back((int32_t)labels[b * S + t]);
      ++len;
    }
    c.lengths.push_back(len);
    c.batch.push_back(std::move(s));
  }
  c.logits = f.to_float("expect.logits");
  c.loss = f.to_float("expect.loss");
  c.grad_injection = f.to_float("expect.grad_injection");
  return c;
}

}  // namespace

TEST_CASE("engine matches the PyTorch reference on every fixture case", "[parity]") {
  const fs::path dir = fs::path(test::fixtures_dir()) / "cases";
  REQUIRE(fs::is_directory(dir));
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().extension() == ".safetensors") files.push_back(e.path());
  std::sort(files.begin(), files.end());
  REQUIRE(!files.empty());

  for (const auto& file : files) {
    const std::string arch = SafetensorsFile(file.string()).metadata().at("arch");
    const Model model = load_model((fs::path(test::fixtures_dir()) / "models" / arch).string());
    Case c = read_case(file.string(), model);
    for (bool recompute : {false, true}) {
      INFO("case " << c.name << (recompute ? " (recompute)" : ""));
      TrainingPass pass(model, PassOptions{recompute, true});
      const double loss = pass.forward(c.batch, c.injection);
      CHECK(std::abs(loss - c.loss.data[0]) / std::abs(c.loss.data[0]) <= kTolerance);

      // logits at the real token positions, [B, S, V] in the reference
      const size_t S = c.ids_shape[1], V = model.config.vocab_size;
      std::vector<float> ours, ref;
      for (size_t b = 0; b < c.batch.size(); ++b) {
        const auto& lg = pass.logits()[b];
        REQUIRE(lg.shape(0) == (size_t)c.lengths[b]);
        ours.insert(ours.end(), lg.begin(), lg.end());
        ref.insert(ref.end(), c.logits.data + b * S * V,
                   c.logits.data + (b * S + c.lengths[b]) * V);
      }
      const double logit_err = test::relative_l2(ours.data(), ref.data(), ref.size());
      INFO("logits relative L2 " << logit_err);
      CHECK(logit_err <= kTolerance);

      InjectionGrad grad;
      pass.backward(grad);
      std::vector<float> g;
      if (c.method == "prefix_tuning") {  // back to PEFT's flat layout
        g = test::prefix_to_flat(grad.prefix);
      } else {
        g.assign(grad.virtual_tokens.begin(), grad.virtual_tokens.end());
      }
      REQUIRE(g.size() == c.grad_injection.numel);
      const double grad_err = test::relative_l2(g.data(), c.grad_injection.data, g.size());
      INFO("injection gradient relative L2 " << grad_err);
      CHECK(grad_err <= kTolerance);
    }
  }
}
