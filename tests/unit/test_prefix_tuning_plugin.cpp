// The prefix_tuning plugin (plugins/prefix_tuning) on the demo model (GQA: 4 heads, 2
// key/value heads): zero initialisation, initialisation from a text's keys/values, PEFT
// export/import with and without the projection MLP, and the GQA geometry it exports.
#include <catch.hpp>

#include <algorithm>
#include <cmath>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "host/plugin/method_instance.h"
#include "host/plugin/method_options.h"
#include "host/plugin/plugin_library.h"
#include "models/common/error.h"
#include "models/engine/engine.h"
#include "models/engine/model.h"
#include "models/tokenizer/tokenizer.h"
#include "test_support.h"

using namespace ph::host;
using ph::test::error_of;
using json = nlohmann::json;

namespace {

// PEFT's base fields, given by the host rather than the method.
const std::vector<std::string> kBaseFields = {"peft_type", "task_type", "token_dim",
                                              "num_attention_heads", "num_layers"};

struct Demo {
  ph::Model model = ph::load_model(ph::test::source_path("models/demo/hf"));
  std::unique_ptr<ph::Tokenizer> tokenizer =
      ph::load_tokenizer(ph::test::source_path("models/demo/hf"));
  ModelHost host{model, tokenizer.get()};
  ModelHost host_without_tokenizer{model, nullptr};
  std::shared_ptr<PluginLibrary> library =
      PluginLibrary::load(std::string(PROMPTHOST_BINARY_DIR) + "/plugins/ph_prefix_tuning.so");

  std::unique_ptr<MethodInstance> create(const json& config, uint64_t seed = 1,
                                         bool for_import = false, const ModelHost* on = nullptr) {
    return std::make_unique<MethodInstance>(
        library, on ? *on : host, resolve_options(library->descriptor(), config, {}, kBaseFields),
        seed, for_import);
  }
  int kv_dim() const { return model.config.n_kv_heads * model.config.head_dim; }
  int flat_dim() const { return model.config.n_layers * 2 * kv_dim(); }
};

const ParameterView& param(const MethodInstance& m, const std::string& name) {
  for (const auto& p : m.parameters())
    if (p.name == name) return p;
  FAIL("no parameter " << name);
  throw 0;
}

bool all_zero(const float* v, size_t n) {
  return std::all_of(v, v + n, [](float x) { return x == 0.0f; });
}

std::vector<float> prefix_of(MethodInstance& m) {
  const ph::Injection inj = m.forward(2, {}, false);
  REQUIRE(inj.virtual_tokens.size() == 0);
  return std::vector<float>(inj.prefix.begin(), inj.prefix.end());
}

}  // namespace

TEST_CASE("prefix_tuning has PEFT's parameters and injects a key/value prefix") {
  Demo d;
  const ph::ModelConfig& c = d.model.config;
  auto plain = d.create({{"num_virtual_tokens", 6}});
  REQUIRE(plain->parameters().size() == 1);
  CHECK(plain->parameters()[0].name == "embedding.weight");
  CHECK(plain->parameters()[0].shape == std::vector<int64_t>{6, d.flat_dim()});
  const ph_injection_spec spec = plain->injection();
  CHECK(spec.n_virtual == 0);
  CHECK(spec.per_example == 0);
  CHECK(spec.n_prefix == 6);
  // prefix(l, kv, g, j, i) = embedding[j, ((2l + kv) * kvH + g) * hd + i]
  const ParameterView& e = plain->parameters()[0];
  const ph::Injection inj = plain->forward(1, {}, true);
  REQUIRE(inj.prefix.shape(0) == (size_t)c.n_layers);
  for (int l = 0; l < c.n_layers; ++l)
    for (int kv = 0; kv < 2; ++kv)
      for (int g = 0; g < c.n_kv_heads; ++g)
        for (int j = 0; j < 6; ++j)
          for (int i = 0; i < c.head_dim; ++i)
            REQUIRE(inj.prefix(l, kv, g, j, i) ==
                    e.value[(size_t)j * d.flat_dim() +
                            ((2 * l + kv) * c.n_kv_heads + g) * c.head_dim + i]);

  auto proj = d.create({{"prefix_projection", true}, {"encoder_hidden_size", 128}});
  std::vector<std::pair<std::string, std::vector<int64_t>>> want = {
      {"embedding.weight", {20, d.kv_dim()}},
      {"transform.0.weight", {128, d.kv_dim()}},
      {"transform.0.bias", {128}},
      {"transform.2.weight", {d.flat_dim(), 128}},
      {"transform.2.bias", {d.flat_dim()}}};
  REQUIRE(proj->parameters().size() == want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    CHECK(proj->parameters()[i].name == want[i].first);
    CHECK(proj->parameters()[i].shape == want[i].second);
  }
  CHECK(proj->parameter_count_total() == 92160);  // the PyTorch reference's count
  // PyTorch's Linear default init: U(±1/sqrt(fan_in))
  const ParameterView& w2 = param(*proj, "transform.2.weight");
  const float bound = 1.0f / std::sqrt(128.0f);
  CHECK(std::all_of(w2.value, w2.value + w2.numel, [&](float x) { return std::abs(x) <= bound; }));
  CHECK(!all_zero(w2.value, w2.numel));
}

TEST_CASE("prefix_tuning init_weights=zero zeroes the prefix, or the last Linear") {
  Demo d;
  auto plain = d.create({{"num_virtual_tokens", 4}, {"init_weights", "zero"}});
  const ParameterView& e = plain->parameters()[0];
  CHECK(all_zero(e.value, e.numel));
  const auto p = prefix_of(*plain);
  CHECK(all_zero(p.data(), p.size()));

  auto proj =
      d.create({{"num_virtual_tokens", 4}, {"init_weights", "zero"}, {"prefix_projection", true}});
  CHECK(
      all_zero(param(*proj, "transform.2.weight").value, param(*proj, "transform.2.weight").numel));
  CHECK(all_zero(param(*proj, "transform.2.bias").value, param(*proj, "transform.2.bias").numel));
  CHECK(!all_zero(param(*proj, "embedding.weight").value, param(*proj, "embedding.weight").numel));
  CHECK(!all_zero(param(*proj, "transform.0.weight").value,
                  param(*proj, "transform.0.weight").numel));
  const auto pp = prefix_of(*proj);
  CHECK(all_zero(pp.data(), pp.size()));

  // the default (null) is random
  auto random = d.create({{"num_virtual_tokens", 4}});
  CHECK(!all_zero(random->parameters()[0].value, random->parameters()[0].numel));
}

TEST_CASE("prefix_tuning prefix_init_text injects the text's keys and values") {
  Demo d;
  const std::string text = "The computer";
  const std::vector<int32_t> ids = d.tokenizer->encode(text);
  REQUIRE(ids.size() >= 2);
  for (int n : {(int)ids.size(), 7}) {  // exactly the text, and tiled
    INFO("n = " << n);
    std::vector<int32_t> tokens(n);
    for (int j = 0; j < n; ++j) tokens[j] = ids[j % ids.size()];
    const std::vector<float> expected = ph::test::kv_cache_prefix(d.model, tokens);
    auto m = d.create({{"num_virtual_tokens", n}, {"prefix_init_text", text}});
    const auto got = prefix_of(*m);
    REQUIRE(got.size() == expected.size());
    CHECK(ph::test::relative_l2(got.data(), expected.data(), got.size()) < 1e-6);
  }

  CHECK(error_of([&] {
          d.create({{"prefix_projection", true}, {"prefix_init_text", text}});
        }).find("prefix_init_text") != std::string::npos);
  // for_import skips the model run (so a host without a tokenizer does not matter)...
  CHECK_NOTHROW(d.create({{"prefix_init_text", text}}, 1, true, &d.host_without_tokenizer));
  // ...which a normal creation needs
  CHECK_THROWS_AS(d.create({{"prefix_init_text", text}}, 1, false, &d.host_without_tokenizer),
                  ph::Error);
}

TEST_CASE("prefix_tuning exports PEFT's flat prefix and GQA geometry, and imports it") {
  Demo d;
  const ph::ModelConfig& c = d.model.config;
  for (bool projection : {false, true}) {
    INFO("prefix_projection " << projection);
    const json config = {{"num_virtual_tokens", 5}, {"prefix_projection", projection}};
    auto a = d.create(config, 11);
    const auto prefix_a = prefix_of(*a);
    const MethodInstance::Adapter adapter = a->export_adapter();

    REQUIRE(adapter.tensors.size() == 1);
    const auto& pe = adapter.tensors.at("prompt_embeddings");
    CHECK(pe.first == std::vector<int64_t>{5, d.flat_dim()});
    // the exported flat prefix is the injected one, in PEFT's layout
    const auto flat_a = [&] {
      const ph::Injection inj = a->forward(1, {}, false);
      return ph::test::prefix_to_flat(inj.prefix);
    }();
    CHECK(pe.second == flat_a);

    // GQA (peft-spec §1.2): token_dim = n_kv_heads * head_dim, num_attention_heads = n_kv_heads
    CHECK(adapter.config.at("token_dim") == d.kv_dim());
    CHECK(d.kv_dim() < c.dim);
    CHECK(adapter.config.at("num_attention_heads") == c.n_kv_heads);
    CHECK(adapter.config.at("num_layers") == c.n_layers);
    CHECK(adapter.config.at("num_virtual_tokens") == 5);
    CHECK(adapter.config.at("encoder_hidden_size") == d.kv_dim());  // null resolved
    CHECK(adapter.config.at("init_weights").is_null());
    CHECK(adapter.config.at("prefix_projection") == projection);

    auto b = d.create(config, 99, true);
    CHECK(prefix_of(*b) != prefix_a);
    b->import_adapter(adapter);
    CHECK(prefix_of(*b) == prefix_a);
    CHECK(b->export_adapter().tensors.at("prompt_embeddings").second == pe.second);
    if (!projection)
      CHECK(std::vector<float>(b->parameters()[0].value,
                               b->parameters()[0].value + b->parameters()[0].numel) == pe.second);

    // a wrong shape names what was expected and found
    MethodInstance::Adapter bad = adapter;
    bad.tensors["prompt_embeddings"] = {{5, d.flat_dim() / 2},
                                        std::vector<float>(5 * d.flat_dim() / 2, 0.0f)};
    const std::string msg = error_of([&] { b->import_adapter(bad); });
    CHECK(msg.find("[5, " + std::to_string(d.flat_dim() / 2) + "]") != std::string::npos);
    CHECK(msg.find("[5, " + std::to_string(d.flat_dim()) + "]") != std::string::npos);
  }
}

TEST_CASE("prefix_tuning backward accumulates the prefix gradient into its parameters") {
  Demo d;
  const ph::ModelConfig& c = d.model.config;
  auto m = d.create({{"num_virtual_tokens", 3}});
  ph::InjectionGrad g;
  g.prefix = xt::zeros<float>(
      {(size_t)c.n_layers, size_t{2}, (size_t)c.n_kv_heads, size_t{3}, (size_t)c.head_dim});
  g.prefix(1, 1, 1, 2, 5) = 2.0f;
  m->forward(1, {}, true);
  m->zero_grad();
  m->backward(1, {}, g);
  m->backward(1, {}, g);
  const ParameterView& e = m->parameters()[0];
  const size_t at = (size_t)2 * d.flat_dim() + ((2 * 1 + 1) * c.n_kv_heads + 1) * c.head_dim + 5;
  CHECK(e.grad[at] == 4.0f);
  CHECK(std::count(e.grad, e.grad + e.numel, 0.0f) == (long)e.numel - 1);
}
