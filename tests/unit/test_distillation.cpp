// Training by context distillation (host/trainer/distillation.h, Sequence::soft_targets):
// a finite-difference check of the distillation loss's gradient by a key/value prefix
// (llama with grouped-query heads, and gpt2; with and without recompute), the loss's
// definition restated on the engine's own logits, the teacher's top-k, the cache, and the
// refusals; a short distillation run of the cartridge plugin on the demo model.
#include <catch.hpp>

#include <cmath>
#include <fstream>
#include <random>

#include <nlohmann/json.hpp>

#include "gradient_check.h"
#include "host/trainer/distillation.h"
#include "host/trainer/trainer.h"
#include "models/engine/engine.h"
#include "models/loader/random_model.h"
#include "test_support.h"
#include "tiny_decoders.h"
#include "trainer_test_support.h"

using namespace ph;

namespace {

// llama with grouped-query heads, and gpt2 (tests/tiny_decoders.h).
ModelConfig llama_gqa_config() {
  return test::tiny_llama_config(2, false, 8, false);
}

ModelConfig gpt2_config() {
  return test::tiny_family_config(Arch::kGpt2);
}

std::vector<int32_t> random_tokens(size_t n, int vocab, std::mt19937& rng) {
  std::uniform_int_distribution<int> id(0, vocab - 1);
  std::vector<int32_t> out(n);
  for (auto& t : out) t = id(rng);
  return out;
}

// Three examples of different lengths, each with its own context, targets from the teacher.
std::vector<Sequence> distill_batch(const Model& model, const trainer::TeacherSettings& settings,
                                    std::mt19937& rng) {
  std::vector<Sequence> batch;
  for (size_t len : {5u, 8u, 3u}) {
    Sequence s;
    s.tokens = random_tokens(len, model.config.vocab_size, rng);
    const auto context = random_tokens(6 + len, model.config.vocab_size, rng);
    s.soft_targets = trainer::teacher_targets(model, context, s.tokens, settings);
    batch.push_back(s);
  }
  return batch;
}

}  // namespace

TEST_CASE("distillation loss: gradient by the prefix matches finite differences",
          "[distillation]") {
  for (const ModelConfig& config : {llama_gqa_config(), gpt2_config()})
    for (bool recompute : {false, true})
      DYNAMIC_SECTION(arch_name(config.arch) << (recompute ? " (recompute)" : "")) {
        const Model model = make_random_model(config, 7);
        std::mt19937 rng(11);
        std::normal_distribution<float> normal(0.0f, 0.5f);
        trainer::TeacherSettings settings;
        settings.top_k = 5;
        settings.temperature = 0.7f;
        const auto batch = distill_batch(model, settings, rng);
        const Injection inj = test::random_injection(config, 1, 0, 4, normal, rng);
        const PassOptions options{recompute, false};
        TrainingPass pass(model, options);
        const double loss = pass.forward(batch, inj);
        REQUIRE(std::isfinite(loss));
        REQUIRE(loss > 0.0);
        InjectionGrad grad;
        pass.backward(grad);
        const auto g = test::trained_grad(grad);
        test::check_directions(model, batch, inj, g, 0, g.size(), "prefix", rng, options);
      }
}

TEST_CASE("distillation loss: PEFT's per-row mean, then the mean over rows", "[distillation]") {
  const Model model = make_random_model(llama_gqa_config(), 3);
  std::mt19937 rng(5);
  std::normal_distribution<float> normal(0.0f, 0.5f);
  trainer::TeacherSettings settings;
  settings.top_k = 4;
  auto batch = distill_batch(model, settings, rng);
  batch[2].soft_targets.assign(batch[2].tokens.size(), SoftTarget{});  // nothing scored here
  const Injection inj = test::random_injection(model.config, 1, 0, 3, normal, rng);
  TrainingPass pass(model, PassOptions{false, true});
  const double loss = pass.forward(batch, inj);

  // restated on the student's logits: -sum_i p_i log_softmax(logits)_i
  double want = 0.0;
  for (size_t b = 0; b < 2; ++b) {
    const auto& logits = pass.logits()[b];
    const int V = model.config.vocab_size;
    double row = 0.0;
    for (size_t t = 1; t < batch[b].tokens.size(); ++t) {
      const float* lg = &logits(t - 1, 0);
      double top = lg[0], sum = 0.0;
      for (int v = 0; v < V; ++v) top = std::max(top, (double)lg[v]);
      for (int v = 0; v < V; ++v) sum += std::exp(lg[v] - top);
      const SoftTarget& st = batch[b].soft_targets[t];
      for (size_t j = 0; j < st.ids.size(); ++j)
        row -= st.probs[j] * (lg[st.ids[j]] - top - std::log(sum));
    }
    want += row / (double)(batch[b].tokens.size() - 1);
  }
  want /= 2;  // the row with no target does not count
  CHECK(std::abs(loss - want) <= 1e-5 * want);
  CHECK(pass.scored_count() == (int)(batch[0].tokens.size() + batch[1].tokens.size() - 2));

  // The loss is a mean over the sequences with targets: halves weighted by loss_count()
  // (as the ranks of a distributed run are) give the whole batch's loss, where weights by
  // scored tokens would not (the two sequences differ in length).
  REQUIRE(pass.loss_count() == 2);
  REQUIRE(batch[0].tokens.size() != batch[1].tokens.size());
  double combined = 0.0;
  for (size_t b = 0; b < 2; ++b) {
    TrainingPass half(model, PassOptions{false, true});
    const double l = half.forward({batch[b], batch[2]}, inj);
    CHECK(half.loss_count() == 1);
    combined += l * half.loss_count() / pass.loss_count();
  }
  CHECK(std::abs(combined - loss) <= 1e-6 * loss);
}

TEST_CASE("distillation: the teacher's top-k, the cache and the refusals", "[distillation]") {
  const float logits[5] = {0.0f, 2.0f, 1.0f, 2.0f, -1.0f};
  trainer::TeacherSettings settings;
  settings.top_k = 3;
  settings.temperature = 0.5f;
  const SoftTarget t = trainer::top_k_target(logits, 5, settings);
  REQUIRE(t.ids == std::vector<int32_t>{1, 3, 2});  // a tie goes to the lower id
  double z = 0.0;
  for (float l : logits) z += std::exp(l / 0.5);
  CHECK(std::abs(t.probs[0] - std::exp(4.0) / z) <= 1e-6);
  CHECK(std::abs(t.probs[2] - std::exp(2.0) / z) <= 1e-6);  // not renormalised over the 3
  settings.top_k = 99;
  CHECK(trainer::top_k_target(logits, 5, settings).ids.size() == 5);

  const Model model = make_random_model(llama_gqa_config(), 1);
  std::mt19937 rng(2);
  const auto context = random_tokens(10, 50, rng), tokens = random_tokens(6, 50, rng);
  trainer::TeacherCache cache(model, settings);
  const auto& first = cache.targets(0, context, tokens);
  CHECK(first.size() == tokens.size());
  CHECK(first[0].ids.empty());
  CHECK(&cache.targets(0, context, tokens) == &first);  // computed once
  CHECK(cache.size() == 1);

  const auto too_long = random_tokens(60, 50, rng);
  CHECK(test::error_message([&] {
          trainer::teacher_targets(model, too_long, tokens, settings);
        }).find("exceed the model's context of 64") != std::string::npos);
  Sequence bad;
  bad.tokens = tokens;
  bad.soft_targets = first;
  bad.soft_targets[2].ids[0] = 50;
  TrainingPass pass(model);
  CHECK(test::error_message([&] {
          pass.forward({bad}, Injection{});
        }).find("id 50 is outside the vocabulary of 50") != std::string::npos);
}

TEST_CASE("distill_labels_only: the teacher's targets only where the data labels", "[distillation]") {
  const Model model = make_random_model(llama_gqa_config(), 1);
  std::mt19937 rng(4);
  host::MethodInstance::Teacher teacher;
  teacher.top_k = 3;
  teacher.context_ids = random_tokens(8, 50, rng);
  Sequence seq;
  seq.tokens = random_tokens(7, 50, rng);
  seq.labels = seq.tokens;  // an input/output example: the first 4 tokens are the input
  for (int t = 0; t < 4; ++t) seq.labels[t] = kIgnoreLabel;
  trainer::Example example;
  example.line = 1;
  for (bool labeled_only : {false, true}) {
    teacher.labeled_only = labeled_only;
    trainer::Distiller distiller(model, nullptr, teacher);
    Sequence s = seq;
    distiller.attach(0, 0, example, "data.jsonl", s);
    REQUIRE(s.soft_targets.size() == seq.tokens.size());
    CHECK(s.labels.empty());  // the labels' loss is replaced
    for (size_t t = 1; t < s.tokens.size(); ++t) {
      INFO("labeled_only " << labeled_only << ", position " << t);
      CHECK(s.soft_targets[t].ids.empty() == (labeled_only && t < 4));
    }
    TrainingPass pass(model);
    pass.forward({s}, Injection{});
    CHECK(pass.scored_count() == (labeled_only ? 3 : 6));
  }
}

TEST_CASE("training a cartridge by distillation lowers its loss against the teacher",
          "[distillation]") {
  const std::string out = test::temp_dir("distill_run");
  // two chunks of quotes; each example is one quote, its chunk the teacher's context
  const std::vector<std::vector<std::string>> chunks = {
      {"APL is a write-only language.", "All diplomacy is a continuation of war by other means.",
       "Where do your SOCKS go when you lose them in the WASHER?"},
      {"Untold wealth: what you left out on April 15th.",
       "The beer-cooled computer does not "
       "harm the ozone layer."}};
  const std::string data = out + ".jsonl";
  {
    std::ofstream f(data);
    for (const auto& chunk : chunks) {
      std::string context;
      for (const auto& q : chunk) context += q + "\n";
      for (const auto& q : chunk)
        f << nlohmann::json{{"context", context}, {"text", q}}.dump() << "\n";
    }
  }
  trainer::TrainConfig c = test::small_run(out);
  c.plugin = "cartridge";
  c.data = data;
  c.eval_data = data;
  c.eval_generate = false;
  c.max_steps = 12;
  c.batch_size = 5;
  c.set = {"num_virtual_tokens=4", "num_frozen_tokens=1"};
  const trainer::TrainSummary s = trainer::train(c);
  REQUIRE(s.evaluated);
  REQUIRE(s.before.has_distill);
  REQUIRE(s.after.has_distill);
  INFO("distillation loss before " << s.before.distill_loss << ", after " << s.after.distill_loss);
  CHECK(s.after.distill_loss < 0.9 * s.before.distill_loss);

  // no context anywhere: refused, naming the example
  {
    std::ofstream f(data);
    f << nlohmann::json{{"text", "no context here"}}.dump() << "\n";
  }
  c.eval_data.clear();
  c.overwrite = true;
  CHECK(test::error_message([&] { trainer::train(c); }).find("no \"context\" field") !=
        std::string::npos);
  // ... the method's own text is then the context (init_text, at least 4 tokens)
  c.set.push_back("init_text=APL is a write-only language. All diplomacy is war.");
  c.max_steps = 2;
  CHECK(std::isfinite(trainer::train(c).last_loss));
}
