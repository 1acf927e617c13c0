// Finite-difference checks of d loss / d injection on random models and inputs: both
// families, grouped-query attention (including one key/value head), q/k/v biases and a
// head_dim that is not hidden/heads, sequences of different lengths, shared and
// per-example virtual tokens, virtual tokens inside the sequence (P-tuning templates),
// and a key/value prefix together with virtual tokens.
// (The directional checks themselves: gradient_check.h.)
#include <catch.hpp>

#include <cmath>
#include <random>

#include "gradient_check.h"
#include "models/engine/engine.h"
#include "models/loader/random_model.h"
#include "tiny_decoders.h"

using namespace ph;

namespace {

ModelConfig llama_config(int kv_heads, bool qkv_bias, int head_dim, bool tied) {
  return test::tiny_llama_config(kv_heads, qkv_bias, head_dim, tied);
}

ModelConfig gpt2_config() {
  return test::tiny_family_config(Arch::kGpt2);
}

struct Scenario {
  const char* name;
  int prefix = 0;     // key/value prefix length
  int n_virtual = 0;  // virtual tokens per set
  bool per_example = false;
  bool template_split = false;  // half the virtual tokens before the input, half after
};

std::vector<Sequence> make_batch(const Scenario& s, int vocab, std::mt19937& rng) {
  std::vector<Sequence> batch;
  const int lengths[] = {9, 4, 13};  // different lengths: nothing padded
  for (int len : lengths) {
    Sequence seq;
    const int before = s.template_split ? s.n_virtual / 2 : s.n_virtual;
    for (int k = 0; k < before; ++k) seq.tokens.push_back(virtual_slot(k));
    for (int t = 0; t < len; ++t) {
      if (s.template_split && t == len / 2)
        for (int k = before; k < s.n_virtual; ++k) seq.tokens.push_back(virtual_slot(k));
      seq.tokens.push_back((int32_t)(rng() % vocab));
    }
    for (size_t t = 0; t < seq.tokens.size(); ++t) {
      const bool scored = !is_virtual(seq.tokens[t]) && rng() % 4 != 0;
      seq.labels.push_back(scored ? seq.tokens[t] : kIgnoreLabel);
    }
    batch.push_back(std::move(seq));
  }
  return batch;
}

Injection make_injection(const Scenario& s, const ModelConfig& c, int batch, std::mt19937& rng) {
  std::normal_distribution<float> normal(0.0f, 0.5f);
  return test::random_injection(c, s.per_example ? batch : 1, s.n_virtual, s.prefix, normal, rng);
}

void check_gradient(const Model& model, const Scenario& s, uint32_t seed) {
  std::mt19937 rng(seed);
  const auto batch = make_batch(s, model.config.vocab_size, rng);
  Injection inj = make_injection(s, model.config, (int)batch.size(), rng);
  TrainingPass pass(model);
  const double loss = pass.forward(batch, inj);
  REQUIRE(std::isfinite(loss));
  REQUIRE(pass.scored_count() > 0);
  InjectionGrad grad;
  pass.backward(grad);
  const auto g = test::trained_grad(grad);
  test::check_directions(model, batch, inj, g, 0, g.size(), s.name, rng);
}

const Scenario kScenarios[] = {
    {"shared virtual tokens (prompt tuning)", 0, 5, false, false},
    {"per-example virtual tokens (multitask)", 0, 4, true, false},
    {"virtual tokens before and inside the input (template)", 0, 6, false, true},
    {"key/value prefix (prefix tuning)", 5, 0, false, false},
    {"prefix and shared virtual tokens together", 3, 4, false, false},
    {"prefix and per-example template tokens together", 3, 4, true, true},
};

}  // namespace

TEST_CASE("llama injection gradients match finite differences", "[gradients]") {
  const Model gqa = make_random_model(llama_config(2, false, 8, false), 11);
  const Model mqa = make_random_model(llama_config(1, true, 12, true), 12);
  uint32_t seed = 100;
  for (const auto& s : kScenarios) {
    check_gradient(gqa, s, seed++);
    check_gradient(mqa, s, seed++);
  }
}

TEST_CASE("gpt2 injection gradients match finite differences", "[gradients]") {
  const Model model = make_random_model(gpt2_config(), 21);
  uint32_t seed = 200;
  for (const auto& s : kScenarios) check_gradient(model, s, seed++);
}

TEST_CASE("recompute gives the same loss and gradient", "[gradients]") {
  const Model model = make_random_model(llama_config(2, false, 8, false), 31);
  std::mt19937 rng(5);
  const Scenario s = kScenarios[4];
  const auto batch = make_batch(s, model.config.vocab_size, rng);
  const Injection inj = make_injection(s, model.config, (int)batch.size(), rng);
  TrainingPass keep(model), recompute(model, PassOptions{true, false});
  CHECK(keep.forward(batch, inj) == recompute.forward(batch, inj));
  InjectionGrad a, b;
  keep.backward(a);
  recompute.backward(b);
  CHECK(test::trained_grad(a) == test::trained_grad(b));
}
