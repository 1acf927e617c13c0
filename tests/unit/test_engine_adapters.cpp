// LLaMA-Adapter's gated adapter attention in the engine (adapter_attention.h): finite-
// difference checks of the prompts and gates on llama (grouped-query heads, rotary) and
// gpt2, with two adapted layers so the upper one's gradient reaches the lower one
// through its queries, and with virtual tokens whose gradient also flows through the
// adapter's queries; recompute agrees; a zero gate leaves the model as it is; models
// other than llama/gpt2 decoders are refused.
#include <catch.hpp>

#include <cmath>
#include <random>

#include "gradient_check.h"
#include "models/common/error.h"
#include "models/engine/engine.h"
#include "models/generate/generate.h"
#include "models/loader/random_model.h"
#include "test_support.h"
#include "tiny_decoders.h"

#include <xtensor/xsort.hpp>
#include <xtensor/xview.hpp>

using namespace ph;

namespace {

// Three layers: two adapted, one below them.
ModelConfig llama_config() {
  return test::tiny_llama_config(2, false, 8, false, 3);
}

ModelConfig gpt2_config() {
  return test::tiny_family_config(Arch::kGpt2, 3);
}

std::vector<Sequence> make_batch(int vocab, int n_virtual, std::mt19937& rng) {
  std::vector<Sequence> batch;
  for (int len : {9, 4, 13}) {
    Sequence seq;
    for (int k = 0; k < n_virtual; ++k) seq.tokens.push_back(virtual_slot(k));
    for (int t = 0; t < len; ++t) seq.tokens.push_back((int32_t)(rng() % vocab));
    for (size_t t = 0; t < seq.tokens.size(); ++t) {
      const bool scored = !is_virtual(seq.tokens[t]) && rng() % 4 != 0;
      seq.labels.push_back(scored ? seq.tokens[t] : kIgnoreLabel);
    }
    batch.push_back(std::move(seq));
  }
  return batch;
}

// Prompts N(0, 1) as PEFT draws them, gates of either sign away from 0.
Injection adapter_injection(const ModelConfig& c, int layers, int len, int n_virtual,
                            std::mt19937& rng) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::normal_distribution<float> small(0.0f, 0.5f);
  Injection inj = test::random_injection(c, 1, n_virtual, 0, small, rng);
  inj.adapter_prompts = xt::zeros<float>({layers, len, c.dim});
  for (auto& v : inj.adapter_prompts) v = normal(rng);
  inj.adapter_gates = xt::zeros<float>({(size_t)layers});
  for (size_t i = 0; i < inj.adapter_gates.size(); ++i)
    inj.adapter_gates(i) = (i % 2 ? -1.0f : 1.0f) * (0.6f + 0.3f * (float)i);
  return inj;
}

void check_adapter_gradient(const Model& model, int n_virtual, uint32_t seed) {
  std::mt19937 rng(seed);
  const auto batch = make_batch(model.config.vocab_size, n_virtual, rng);
  const Injection inj = adapter_injection(model.config, 2, 5, n_virtual, rng);
  TrainingPass pass(model);
  REQUIRE(std::isfinite(pass.forward(batch, inj)));
  InjectionGrad grad;
  pass.backward(grad);
  REQUIRE(grad.adapter_prompts.shape() == inj.adapter_prompts.shape());
  REQUIRE(grad.adapter_gates.shape() == inj.adapter_gates.shape());
  const auto g = test::trained_grad(grad);
  const size_t nv = inj.virtual_tokens.size(), np = inj.adapter_prompts.size();
  const size_t per_layer = np / 2;
  // each part on its own: the lower layer's prompt (reached only through the upper
  // layer's queries when it is not the top), the upper's, the gates, the virtual tokens
  test::check_directions(model, batch, inj, g, nv, nv + per_layer, "lower layer's prompt", rng);
  test::check_directions(model, batch, inj, g, nv + per_layer, nv + np, "upper layer's prompt",
                         rng);
  test::check_directions(model, batch, inj, g, nv + np, g.size(), "gates", rng);
  if (nv) test::check_directions(model, batch, inj, g, 0, nv, "virtual tokens", rng);
}

}  // namespace

TEST_CASE("llama adapter prompts and gates match finite differences", "[adapters]") {
  const Model model = make_random_model(llama_config(), 41);
  check_adapter_gradient(model, 0, 1);
  check_adapter_gradient(model, 3, 2);
}

TEST_CASE("gpt2 adapter prompts and gates match finite differences", "[adapters]") {
  const Model model = make_random_model(gpt2_config(), 42);
  check_adapter_gradient(model, 0, 3);
  check_adapter_gradient(model, 3, 4);
}

TEST_CASE("adapter attention: recompute gives the same loss and gradient", "[adapters]") {
  const Model model = make_random_model(llama_config(), 43);
  std::mt19937 rng(5);
  const auto batch = make_batch(model.config.vocab_size, 2, rng);
  const Injection inj = adapter_injection(model.config, 2, 3, 2, rng);
  TrainingPass keep(model), recompute(model, PassOptions{true, false});
  CHECK(keep.forward(batch, inj) == recompute.forward(batch, inj));
  InjectionGrad a, b;
  keep.backward(a);
  recompute.backward(b);
  CHECK(test::trained_grad(a) == test::trained_grad(b));
}

TEST_CASE("adapter attention with zero gates is the base model", "[adapters]") {
  for (const ModelConfig& c : {llama_config(), gpt2_config()}) {
    const Model model = make_random_model(c, 44);
    std::mt19937 rng(6);
    const auto batch = make_batch(c.vocab_size, 0, rng);
    Injection inj = adapter_injection(c, 2, 4, 0, rng);
    inj.adapter_gates.fill(0.0f);
    TrainingPass with(model), without(model);
    CHECK(with.forward(batch, inj) == without.forward(batch, Injection{}));
    InjectionGrad g;
    with.backward(g);
    // PEFT's init: the prompts get no gradient while the gate is 0, the gates do
    CHECK(xt::amax(xt::abs(g.adapter_prompts))() == 0.0f);
    CHECK(xt::amax(xt::abs(g.adapter_gates))() > 0.0f);
  }
}

TEST_CASE("adapter attention is refused on other families and wrong shapes", "[adapters]") {
  const Model model = make_random_model(llama_config(), 45);
  std::mt19937 rng(7);
  const auto batch = make_batch(model.config.vocab_size, 0, rng);
  TrainingPass pass(model);
  Injection too_many = adapter_injection(model.config, 4, 2, 0, rng);  // 4 of 3 layers
  CHECK_THROWS_WITH(pass.forward(batch, too_many), Catch::Contains("adapter prompts have shape"));
  Injection gates = adapter_injection(model.config, 2, 2, 0, rng);
  gates.adapter_gates = xt::zeros<float>({1});
  CHECK_THROWS_WITH(pass.forward(batch, gates), Catch::Contains("1 adapter gates for 2"));

  const ModelConfig bloom = test::tiny_family_config(Arch::kBloom);
  const Model other = make_random_model(bloom, 46);
  TrainingPass other_pass(other);
  CHECK_THROWS_WITH(other_pass.forward(batch, adapter_injection(bloom, 1, 2, 0, rng)),
                    Catch::Contains("need a llama or gpt2 causal decoder, not a bloom model"));
}

// KV-cached decoding with the adapters (InjectionCache, BatchDecoder) picks the same
// tokens, from the same logits, as an argmax loop over full forwards without a cache.
TEST_CASE("generate with adapter prompts equals a cache-free argmax loop", "[adapters]") {
  for (const ModelConfig& c : {llama_config(), gpt2_config()}) {
    const Model model = make_random_model(c, 47);
    std::mt19937 rng(8);
    Injection inj = adapter_injection(c, 2, 4, 0, rng);
    inj.adapter_prompts *= 30.0f;  // a branch strong enough to change the tokens
    inj.adapter_gates *= 8.0f;
    const std::vector<int32_t> prompt = {3, 17, 9, 30, 4};
    GenerateOptions options;
    options.max_new_tokens = 8;
    options.sampling.temperature = 0.0f;
    std::vector<xt::xtensor<float, 1>> cached_logits;
    options.on_token = [&](int32_t, const xt::xtensor<float, 1>& lg) {
      cached_logits.push_back(lg);
    };
    const auto cached = generate(model, InjectionCache(model, inj), prompt, options);

    std::vector<int32_t> seq = prompt, loop;
    for (int i = 0; i < options.max_new_tokens; ++i) {
      TrainingPass pass(model, PassOptions{false, true});
      Sequence whole;
      whole.tokens = seq;
      pass.forward({whole}, inj);
      const auto& lg = pass.logits()[0];
      const xt::xtensor<float, 1> last = xt::view(lg, lg.shape(0) - 1, xt::all());
      REQUIRE(i < (int)cached_logits.size());
      CHECK(test::relative_l2(cached_logits[i].data(), last.data(), last.size()) < 1e-5);
      const int32_t next = (int32_t)xt::argmax(last)();
      loop.push_back(next);
      seq.push_back(next);
    }
    CHECK(cached == loop);
    // ... and the adapters make a difference (the test would not see a missing branch;
    // the random model's argmax barely moves, its logits do)
    std::vector<xt::xtensor<float, 1>> base_logits;
    options.on_token = [&](int32_t, const xt::xtensor<float, 1>& lg) { base_logits.push_back(lg); };
    generate(model, InjectionCache(), prompt, options);
    CHECK(test::relative_l2(base_logits[0].data(), cached_logits[0].data(),
                            cached_logits[0].size()) > 1e-2);
  }
}
