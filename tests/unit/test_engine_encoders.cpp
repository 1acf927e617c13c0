// The encoder pass (SEQ_CLS on bert- and roberta-shaped random models): finite-difference
// checks of its backward — bidirectional attention with and without a key/value prefix,
// post-norm layers, the embedding LayerNorm, token types, RoBERTa's position offset —
// with respect to the injection and to every trained tensor of both heads (bert's
// classifier behind the frozen pooler, roberta's dense and out_proj); and what the pass
// does and refuses (bidirectionality, independent sequences, the context limit, head
// tensors, task types).
//
// Each check is along directions (gradient_check.h).
#include <catch.hpp>

#include <cmath>
#include <random>

#include "gradient_check.h"
#include "models/engine/engine.h"
#include "models/loader/random_model.h"
#include "test_support.h"

using namespace ph;
using Catch::Matchers::Contains;

namespace {

ModelConfig encoder_config(Arch arch) {
  ModelConfig c;
  set_family(c, arch);
  c.n_layers = 2;
  c.dim = 32;
  c.n_heads = 4;
  c.n_kv_heads = 4;
  c.head_dim = 8;
  c.ffn_dim = 48;
  c.vocab_size = 60;
  c.max_positions = 40;
  c.norm_eps = 1e-5f;
  c.labels = {"a", "b", "c"};
  return c;
}

struct Scenario {
  const char* name;
  int prefix = 0;     // key/value prefix length
  int n_virtual = 0;  // virtual tokens per set, before the text
  bool per_example = false;
  bool token_types = false;  // a second segment of type 1 (bert's sentence pairs)
};

const Scenario kScenarios[] = {
    {"virtual tokens before [CLS] (prompt tuning)", 0, 4, false, false},
    {"per-example virtual tokens (multitask)", 0, 3, true, false},
    {"key/value prefix in every self-attention (prefix tuning)", 5, 0, false, false},
    {"prefix and virtual tokens together", 3, 4, false, false},
    {"virtual tokens with token types", 0, 4, false, true},
};

std::vector<Sequence> make_batch(const Scenario& s, const ModelConfig& c, std::mt19937& rng) {
  std::vector<Sequence> batch;
  const int lengths[] = {9, 4, 13, 6};                // different lengths: nothing padded
  const int32_t classes[] = {2, 0, kIgnoreLabel, 1};  // one sequence not scored
  for (int i = 0; i < 4; ++i) {
    Sequence seq;
    for (int k = 0; k < s.n_virtual; ++k) seq.tokens.push_back(virtual_slot(k));
    for (int t = 0; t < lengths[i]; ++t) seq.tokens.push_back((int32_t)(rng() % c.vocab_size));
    if (s.token_types)
      for (size_t t = 0; t < seq.tokens.size(); ++t)
        seq.token_types.push_back((int)t >= s.n_virtual + lengths[i] / 2 ? 1 : 0);
    seq.class_label = classes[i];
    batch.push_back(std::move(seq));
  }
  return batch;
}

Injection make_injection(const Scenario& s, const Model& model, int batch, std::mt19937& rng) {
  const ModelConfig& c = model.config;
  std::normal_distribution<float> normal(0.0f, 0.5f);
  Injection inj;
  if (s.n_virtual) {
    inj.virtual_tokens = xt::zeros<float>({s.per_example ? batch : 1, s.n_virtual, c.dim});
    for (auto& v : inj.virtual_tokens) v = normal(rng);
  }
  if (s.prefix) {
    inj.prefix = xt::zeros<float>({c.n_layers, 2, c.n_kv_heads, s.prefix, c.head_dim});
    for (auto& v : inj.prefix) v = normal(rng);
  }
  // the head being trained: the model's, moved away from its small initial values so that
  // its gradients are not dwarfed by the injection's
  inj.head = model.classifier;
  for (auto& [name, t] : inj.head)
    for (auto& v : t) v = normal(rng);
  return inj;
}

void check_gradient(const Model& model, const Scenario& s, uint32_t seed) {
  std::mt19937 rng(seed);
  const auto batch = make_batch(s, model.config, rng);
  const Injection inj = make_injection(s, model, (int)batch.size(), rng);
  TrainingPass pass(model);
  const double loss = pass.forward(batch, inj);
  REQUIRE(std::isfinite(loss));
  REQUIRE(pass.scored_count() == 3);
  InjectionGrad grad;
  pass.backward(grad);
  REQUIRE(grad.head.size() == inj.head.size());
  for (const auto& [name, t] : inj.head) {
    INFO("head tensor " << name);
    REQUIRE(grad.head.count(name));
    CHECK(grad.head.at(name).shape() == t.shape());
  }
  const auto g = test::trained_grad(grad);
  test::check_directions(model, batch, inj, g, 0, g.size(), std::string(s.name) + ", everything",
                         rng);
  // the injection's part alone: the head's gradient is larger and could hide an error in it
  test::check_directions(model, batch, inj, g, 0, inj.virtual_tokens.size() + inj.prefix.size(),
                         std::string(s.name) + ", injection", rng);
}

std::vector<float> logits_of(const Model& model, const std::vector<Sequence>& batch,
                             const Injection& inj, size_t b) {
  TrainingPass pass(model, PassOptions{false, true});
  pass.forward(batch, inj);
  const auto& l = pass.logits().at(b);
  return std::vector<float>(l.begin(), l.end());
}

}  // namespace

TEST_CASE("bert encoder gradients match finite differences", "[encoders]") {
  const Model model = make_random_model(encoder_config(Arch::kBert), 41);
  REQUIRE(model.pooler.w);
  REQUIRE(model.classifier.size() == 2);  // classifier.weight, classifier.bias
  uint32_t seed = 300;
  for (const auto& s : kScenarios) check_gradient(model, s, seed++);
}

TEST_CASE("roberta encoder gradients match finite differences", "[encoders]") {
  const Model model = make_random_model(encoder_config(Arch::kRoberta), 42);
  REQUIRE(model.config.position_offset == 2);
  REQUIRE(model.classifier.size() == 4);  // classifier.{dense,out_proj}.{weight,bias}
  uint32_t seed = 400;
  for (const auto& s : kScenarios)
    if (!s.token_types) check_gradient(model, s, seed++);  // roberta: one token type
}

TEST_CASE("encoder: the model's own head is used and differentiated when the injection has none",
          "[encoders]") {
  const Model model = make_random_model(encoder_config(Arch::kRoberta), 43);
  std::mt19937 rng(7);
  const Scenario& s = kScenarios[0];
  const auto batch = make_batch(s, model.config, rng);
  Injection with_head = make_injection(s, model, (int)batch.size(), rng);
  with_head.head = model.classifier;
  Injection without = with_head;
  without.head.clear();
  TrainingPass a(model), b(model);
  CHECK(a.forward(batch, with_head) == b.forward(batch, without));
  InjectionGrad ga, gb;
  a.backward(ga);
  b.backward(gb);
  REQUIRE(gb.head.size() == model.classifier.size());
  CHECK(test::trained_grad(ga) == test::trained_grad(gb));
}

TEST_CASE("encoder: recompute gives the same loss and gradient", "[encoders]") {
  const Model model = make_random_model(encoder_config(Arch::kBert), 44);
  std::mt19937 rng(8);
  const Scenario& s = kScenarios[3];
  const auto batch = make_batch(s, model.config, rng);
  const Injection inj = make_injection(s, model, (int)batch.size(), rng);
  TrainingPass keep(model), recompute(model, PassOptions{true, false});
  CHECK(keep.forward(batch, inj) == recompute.forward(batch, inj));
  InjectionGrad a, b;
  keep.backward(a);
  recompute.backward(b);
  CHECK(test::trained_grad(a) == test::trained_grad(b));
}

TEST_CASE("encoder: attention is bidirectional and sequences are independent", "[encoders]") {
  const Model model = make_random_model(encoder_config(Arch::kBert), 45);
  std::mt19937 rng(9);
  const Scenario& s = kScenarios[0];
  auto batch = make_batch(s, model.config, rng);
  const Injection inj = make_injection(s, model, (int)batch.size(), rng);
  const auto before0 = logits_of(model, batch, inj, 0), before1 = logits_of(model, batch, inj, 1);
  REQUIRE(before0.size() == 3);
  // the head reads row 0; a causal stack would not let it see the last token
  batch[0].tokens.back() = (batch[0].tokens.back() + 1) % model.config.vocab_size;
  CHECK(logits_of(model, batch, inj, 0) != before0);
  CHECK(logits_of(model, batch, inj, 1) == before1);
}

TEST_CASE("encoder: the context limit, token types, classes and head tensors are checked",
          "[encoders]") {
  const Model bert = make_random_model(encoder_config(Arch::kBert), 46);
  const Model roberta = make_random_model(encoder_config(Arch::kRoberta), 47);
  Sequence s;
  s.tokens.assign(36, 5);
  s.class_label = 1;
  Injection prefix;
  prefix.prefix = xt::zeros<float>({2, 2, 4, 5, 8});
  {
    TrainingPass pass(bert);  // 36 + 5 > 40 positions
    const auto msg = test::error_of([&] { pass.forward({s}, prefix); });
    CHECK_THAT(msg, Contains("plus a prefix of 5") && Contains("40 positions") &&
                        Contains("max_position_embeddings"));
    s.tokens.resize(35);  // exactly 40: fits
    CHECK(std::isfinite(pass.forward({s}, prefix)));
  }
  {
    TrainingPass pass(roberta);  // the table has 42 rows, the first 2 before the text
    s.tokens.resize(36);
    const auto msg = test::error_of([&] { pass.forward({s}, prefix); });
    CHECK_THAT(msg, Contains("40 positions") && Contains("minus the first 2"));
  }
  TrainingPass pass(bert);
  Sequence t;
  t.tokens = {2, 7, 3};
  t.token_types = {0, 2, 1};
  t.class_label = 0;
  CHECK_THAT(test::error_of([&] { pass.forward({t}, {}); }),
             Contains("token type 2 at position 1") && Contains("type_vocab_size"));
  t.token_types = {0, 1};
  CHECK_THAT(test::error_of([&] { pass.forward({t}, {}); }),
             Contains("2 token types for 3 tokens"));
  t.token_types.clear();
  t.class_label = 3;
  CHECK_THAT(test::error_of([&] { pass.forward({t}, {}); }),
             Contains("class 3 is outside the head's 3 classes"));
  t.class_label = 0;
  Injection head;
  head.head = bert.classifier;
  head.head["classifier.dense.weight"] = xt::zeros<float>({32, 32});
  CHECK_THAT(test::error_of([&] { pass.forward({t}, head); }),
             Contains("'classifier.dense.weight' is not part of a bert head"));
  head.head = bert.classifier;
  head.head["classifier.bias"] = xt::zeros<float>({4});
  CHECK_THAT(test::error_of([&] { pass.forward({t}, head); }),
             Contains("'classifier.bias' has shape [4], the model needs [3]"));
  head.head.erase("classifier.bias");
  CHECK_THAT(test::error_of([&] { pass.forward({t}, head); }),
             Contains("'classifier.bias' is missing"));
}

TEST_CASE("encoder: a task other than SEQ_CLS is refused", "[encoders]") {
  ModelConfig c = encoder_config(Arch::kBert);
  Model model = make_random_model(c, 48);
  model.config.task = TaskType::kCausalLm;
  CHECK_THAT(test::error_of([&] { TrainingPass pass(model); }),
             Contains("bert model is an encoder") && Contains("not CAUSAL_LM"));
}
