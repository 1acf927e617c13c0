// The decoder families beyond llama and gpt2 (bloom: ALiBi, the embedding LayerNorm and
// per-head fused q/k/v; gemma: scaled embeddings, (1 + w) norms, GeGLU, an explicit
// head_dim) and sequence classification on decoders (the `score` head at the last token):
//   - finite-difference checks of every new backward path on tiny random models, to the
//     injection (virtual tokens, a prefix) and to the classification head's weight;
//   - KV-cached greedy generation equals the full forward's argmax, step by step;
//   - config and weight errors name the file, field or tensor.
#include <catch.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>

#include <nlohmann/json.hpp>
#include <xtensor/xmath.hpp>
#include <xtensor/xview.hpp>

#include "gradient_check.h"
#include "models/common/error.h"
#include "models/engine/alibi.h"
#include "models/engine/engine.h"
#include "models/generate/generate.h"
#include "models/loader/random_model.h"
#include "models/loader/safetensors.h"
#include "test_support.h"

namespace fs = std::filesystem;
using namespace ph;
using Catch::Matchers::Contains;

namespace {

ModelConfig tiny(Arch arch, int heads, int kv_heads, int head_dim) {
  ModelConfig c;
  set_family(c, arch);
  c.n_layers = 2;
  c.dim = 24;
  c.n_heads = heads;
  c.n_kv_heads = kv_heads;
  c.head_dim = head_dim;
  c.ffn_dim = 40;
  c.vocab_size = 40;
  c.max_positions = 64;
  c.tied_head = true;
  return c;
}

// bloom: 6 heads (not a power of two: the slopes' second series), LayerNorm, biases.
ModelConfig bloom_config() {
  return tiny(Arch::kBloom, 6, 6, 4);
}

// gemma: one key/value head, heads · head_dim (40) != hidden (24), embeddings · sqrt(24).
ModelConfig gemma_config() {
  ModelConfig c = tiny(Arch::kGemma, 4, 1, 10);
  c.embed_scale = std::sqrt(24.0f);
  return c;
}

ModelConfig classifier(ModelConfig c) {
  c.task = TaskType::kSeqCls;
  c.classifier = ClassifierHead::kLastToken;
  c.labels = {"neg", "neutral", "pos"};
  return c;
}

struct Scenario {
  const char* name;
  int prefix = 0;     // key/value prefix length
  int n_virtual = 0;  // virtual tokens per set
  bool per_example = false;
  bool template_split = false;  // half the virtual tokens before the input, half inside it
};

const Scenario kScenarios[] = {
    {"shared virtual tokens", 0, 4, false, false},
    {"per-example virtual tokens", 0, 3, true, false},
    {"virtual tokens before and inside the input", 0, 4, false, true},
    {"key/value prefix", 4, 0, false, false},
    {"prefix and shared virtual tokens", 3, 3, false, false},
};

// Three sequences of different lengths; causal models get token labels (some unscored),
// classifiers a class each (the second unscored).
std::vector<Sequence> make_batch(const Scenario& s, const ModelConfig& c, std::mt19937& rng) {
  std::vector<Sequence> batch;
  const int lengths[] = {7, 3, 10};
  const int32_t classes[] = {2, kIgnoreLabel, 0};
  for (int i = 0; i < 3; ++i) {
    Sequence seq;
    const int before = s.template_split ? s.n_virtual / 2 : s.n_virtual;
    for (int k = 0; k < before; ++k) seq.tokens.push_back(virtual_slot(k));
    for (int t = 0; t < lengths[i]; ++t) {
      if (s.template_split && t == lengths[i] / 2)
        for (int k = before; k < s.n_virtual; ++k) seq.tokens.push_back(virtual_slot(k));
      seq.tokens.push_back((int32_t)(rng() % c.vocab_size));
    }
    if (c.task == TaskType::kSeqCls) {
      seq.class_label = classes[i];
    } else {
      for (int32_t tok : seq.tokens)
        seq.labels.push_back(!is_virtual(tok) && rng() % 4 != 0 ? tok : kIgnoreLabel);
    }
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
  // a trained head: the model's, moved away from it
  for (const auto& [name, t] : model.classifier) {
    inj.head[name] = t;
    for (auto& v : inj.head[name]) v += 0.3f * normal(rng);
  }
  return inj;
}

void check_gradient(const Model& model, const Scenario& s, uint32_t seed) {
  std::mt19937 rng(seed);
  const auto batch = make_batch(s, model.config, rng);
  const Injection inj = make_injection(s, model, (int)batch.size(), rng);
  TrainingPass pass(model);
  REQUIRE(std::isfinite(pass.forward(batch, inj)));
  REQUIRE(pass.scored_count() > 0);
  InjectionGrad grad;
  pass.backward(grad);
  REQUIRE(grad.head.size() == inj.head.size());
  // the injection and the head separately (the head's gradient would dominate the whole)
  const auto g = test::trained_grad(grad);
  const size_t n_injection = grad.virtual_tokens.size() + grad.prefix.size();
  test::check_directions(model, batch, inj, g, 0, n_injection, s.name, rng);
  if (n_injection < g.size())
    test::check_directions(model, batch, inj, g, n_injection, g.size(),
                           std::string(s.name) + " (head)", rng);
}

}  // namespace

TEST_CASE("ALiBi slopes are transformers' build_alibi_tensor slopes", "[decoders]") {
  // powers of two: 2^(-8i/n)
  const auto eight = alibi_slopes(8);
  REQUIRE(eight.size() == 8);
  for (int i = 0; i < 8; ++i) CHECK(eight[i] == std::exp2(-(i + 1)));
  // 6 heads: the 4-head series 2^-2, 2^-4, 2^-6, 2^-8, then the odd terms of the 8-head
  // series, 2^-1 and 2^-3
  const std::vector<double> six = {0.25, 0.0625, 0.015625, 0.00390625, 0.5, 0.125};
  CHECK(alibi_slopes(6) == six);
  CHECK(alibi_slopes(1) == std::vector<double>{std::exp2(-8.0)});
}

TEST_CASE("bloom-shaped gradients (ALiBi, embedding LayerNorm) match finite differences",
          "[decoders][gradients]") {
  const Model model = make_random_model(bloom_config(), 41);
  REQUIRE(model.embed_norm.b != nullptr);
  uint32_t seed = 400;
  for (const auto& s : kScenarios) check_gradient(model, s, seed++);
}

TEST_CASE("gemma-shaped gradients (scaled embeddings, GeGLU) match finite differences",
          "[decoders][gradients]") {
  const Model model = make_random_model(gemma_config(), 42);
  uint32_t seed = 500;
  for (const auto& s : kScenarios) check_gradient(model, s, seed++);
}

TEST_CASE("the score head's gradients (injection and head weight) match finite differences",
          "[decoders][gradients]") {
  ModelConfig llama = tiny(Arch::kLlama, 4, 2, 6);
  llama.tied_head = false;
  const Model llama_cls = make_random_model(classifier(llama), 43);
  const Model bloom_cls = make_random_model(classifier(bloom_config()), 44);
  REQUIRE(llama_cls.classifier.count("score.weight"));
  uint32_t seed = 600;
  for (const auto& s : kScenarios) {
    check_gradient(llama_cls, s, seed++);
    check_gradient(bloom_cls, s, seed++);
  }
}

TEST_CASE("a classifier without a trained head uses the model's, and reports its gradient",
          "[decoders]") {
  const Model model = make_random_model(classifier(bloom_config()), 45);
  std::mt19937 rng(7);
  const Scenario& s = kScenarios[0];
  const auto batch = make_batch(s, model.config, rng);
  Injection own = make_injection(s, model, 3, rng);
  own.head = model.classifier;  // exactly the model's
  Injection none = own;
  none.head.clear();
  TrainingPass a(model, PassOptions{false, true}), b(model, PassOptions{false, true});
  CHECK(a.forward(batch, own) == b.forward(batch, none));
  REQUIRE(b.logits().size() == 3);
  CHECK(b.logits()[0].shape(0) == 1);
  CHECK(b.logits()[0].shape(1) == 3);
  CHECK(b.sequence_scored() == std::vector<int>{1, 0, 1});
  InjectionGrad ga, gb;
  a.backward(ga);
  b.backward(gb);
  REQUIRE(gb.head.count("score.weight"));
  CHECK(test::trained_grad(ga) == test::trained_grad(gb));
}

TEST_CASE("shared virtual tokens computed once classify as one set per example does",
          "[decoders]") {
  const Model model = make_random_model(classifier(bloom_config()), 46);
  std::mt19937 rng(8);
  const Scenario& s = kScenarios[4];  // prefix and shared virtual tokens: ALiBi positions
  const auto batch = make_batch(s, model.config, rng);
  const Injection shared = make_injection(s, model, 3, rng);
  Injection per_example = shared;
  per_example.virtual_tokens =
      xt::zeros<float>({size_t(3), shared.virtual_tokens.shape(1), shared.virtual_tokens.shape(2)});
  for (size_t b = 0; b < 3; ++b)
    xt::view(per_example.virtual_tokens, b) = xt::view(shared.virtual_tokens, 0);
  TrainingPass a(model), b(model);
  const double la = a.forward(batch, shared), lb = b.forward(batch, per_example);
  CHECK(std::abs(la - lb) <= 1e-6 * std::abs(lb));
  InjectionGrad ga, gb;
  a.backward(ga);
  b.backward(gb);
  xt::xtensor<float, 2> summed = xt::sum(gb.virtual_tokens, {0});
  const xt::xtensor<float, 2> got = xt::view(ga.virtual_tokens, 0);
  CHECK(test::relative_l2(got.data(), summed.data(), summed.size()) <= 1e-5);
  CHECK(test::relative_l2(ga.head.at("score.weight").data(), gb.head.at("score.weight").data(),
                          gb.head.at("score.weight").size()) <= 1e-5);
}

// ---- KV-cached decoding -------------------------------------------------------------

namespace {

// Greedy generation after an injection (prefix and shared virtual tokens) and a prompt,
// then for each generated token the full forward over everything before it: its last
// row's argmax is that token, and its logits are the ones decoding chose from.
void check_greedy_decoding(const Model& model, uint32_t seed) {
  const ModelConfig& c = model.config;
  std::mt19937 rng(seed);
  const Scenario s = {"prefix and virtual tokens", 3, 4, false, false};
  const Injection inj = make_injection(s, model, 1, rng);
  const std::vector<int32_t> prompt = {1, 17, 33, 5, 9};
  GenerateOptions options;
  options.max_new_tokens = 8;
  options.sampling.temperature = 0.0f;
  std::vector<xt::xtensor<float, 1>> step_logits;
  options.on_token = [&](int32_t, const xt::xtensor<float, 1>& l) { step_logits.push_back(l); };
  const InjectionCache cache(model, inj);
  const auto out = generate(model, cache, prompt, options);
  REQUIRE(out.size() == 8);

  Sequence seq;
  for (int k = 0; k < s.n_virtual; ++k) seq.tokens.push_back(virtual_slot(k));
  seq.tokens.insert(seq.tokens.end(), prompt.begin(), prompt.end());
  for (size_t i = 0; i < out.size(); ++i) {
    TrainingPass pass(model, PassOptions{false, true});
    pass.forward({seq}, inj);
    const auto& logits = pass.logits().at(0);
    const size_t last = logits.shape(0) - 1;
    int best = 0;
    for (int v = 1; v < c.vocab_size; ++v)
      if (logits(last, v) > logits(last, best)) best = v;
    INFO("step " << i);
    CHECK(best == out[i]);
    CHECK(test::relative_l2(step_logits[i].data(), &logits(last, 0), c.vocab_size) <= 1e-5);
    seq.tokens.push_back(out[i]);
  }
}

std::string hf_model(const std::string& name) {
  return test::source_path("tests/fixtures/hf/models/" + name);
}

}  // namespace

TEST_CASE("KV-cached greedy decoding equals the full forward on bloom and gemma", "[decoders]") {
  SECTION("bloom-tiny") {
    check_greedy_decoding(load_model(hf_model("bloom-tiny")), 70);
  }
  SECTION("gemma-tiny") {
    check_greedy_decoding(load_model(hf_model("gemma-tiny")), 71);
  }
  SECTION("random bloom, 6 heads") {
    check_greedy_decoding(make_random_model(bloom_config(), 47), 72);
  }
}

// ---- Loading --------------------------------------------------------------------------

TEST_CASE("bloom and gemma configs set their recipe", "[decoders]") {
  const ModelConfig b = parse_hf_config(hf_model("bloom-tiny") + "/config.json");
  CHECK(b.arch == Arch::kBloom);
  CHECK(b.positions == Positions::kAlibi);
  CHECK(b.embed_norm);
  CHECK(b.layer_norm());
  CHECK(!b.gated_mlp);
  CHECK(b.head_dim == 8);
  CHECK(b.ffn_dim == 128);
  CHECK(b.tied_head);
  const ModelConfig g = parse_hf_config(hf_model("gemma-tiny") + "/config.json");
  CHECK(g.arch == Arch::kGemma);
  CHECK(g.embed_scale == 8.0f);  // sqrt(64)
  CHECK(g.head_dim == 32);
  CHECK(g.q_dim() == 128);
  CHECK(g.activation == Activation::kGeluTanh);
  CHECK(g.gated_mlp);
  CHECK(g.tied_head);
  const ModelConfig l = parse_hf_config(hf_model("llama-cls-tiny") + "/config.json");
  CHECK(l.task == TaskType::kSeqCls);
  CHECK(l.classifier == ClassifierHead::kLastToken);
  CHECK(l.num_labels() == 4);
}

TEST_CASE("bloom's per-head query_key_value is loaded as [q | k | v], gemma's norms as 1 + w",
          "[decoders]") {
  const std::string dir = hf_model("bloom-tiny");
  const Model m = load_model(dir);
  const SafetensorsFile f(dir + "/model.safetensors");
  const FloatTensor qkv = f.to_float("transformer.h.1.self_attention.query_key_value.weight");
  const int D = 32, hd = 8;
  for (int part = 0; part < 3; ++part)  // q, k, v
    for (int h = 0; h < 4; ++h)
      for (int i = 0; i < hd; ++i) {
        const float* want = qkv.data + ((size_t)(h * 3 + part) * hd + i) * D;
        const float* got = m.layers[1].qkv.w + ((size_t)part * D + h * hd + i) * D;
        REQUIRE(std::equal(got, got + D, want));
      }
  REQUIRE(m.embed_norm.w != nullptr);
  CHECK(m.head.w == m.token_embedding);

  const std::string gdir = hf_model("gemma-tiny");
  const Model g = load_model(gdir);
  const SafetensorsFile gf(gdir + "/model.safetensors");
  const FloatTensor w = gf.to_float("model.layers.0.post_attention_layernorm.weight");
  for (int i = 0; i < 64; ++i) CHECK(g.layers[0].mlp_norm.w[i] == 1.0f + w.data[i]);
}

namespace {

// A copy of a fixture model folder, its config edited.
std::string edited_folder(const std::string& name, const std::string& from,
                          const std::function<void(nlohmann::json&)>& edit) {
  const std::string dir = test::temp_dir("decoders_" + name);
  nlohmann::json j;
  std::ifstream(hf_model(from) + "/config.json") >> j;
  edit(j);
  std::ofstream(dir + "/config.json") << j.dump(2);
  fs::copy_file(hf_model(from) + "/model.safetensors", dir + "/model.safetensors");
  return dir;
}

}  // namespace

TEST_CASE("decoder config errors name the file and the field", "[decoders]") {
  SECTION("a bloom classifier whose num_labels disagrees with id2label") {
    const std::string dir = edited_folder("bloom_labels", "bloom-tiny", [](nlohmann::json& j) {
      j["architectures"] = {"BloomForSequenceClassification"};
      j["id2label"] = {{"0", "no"}, {"1", "yes"}};
      j["num_labels"] = 3;
    });
    CHECK_THROWS_WITH(parse_hf_config(dir + "/config.json"), Contains(dir + "/config.json") &&
                                                                 Contains("'num_labels' is 3") &&
                                                                 Contains("'id2label' names 2"));
  }
  SECTION("a llama classifier whose num_labels disagrees with id2label") {
    const std::string dir = edited_folder("llama_labels", "llama-cls-tiny",
                                          [](nlohmann::json& j) { j["num_labels"] = 2; });
    CHECK_THROWS_WITH(load_model(dir), Contains("config.json") && Contains("'num_labels' is 2") &&
                                           Contains("'id2label' names 4"));
  }
  SECTION("bloom with the residual after the LayerNorm") {
    const std::string dir = edited_folder("bloom_post_ln", "bloom-tiny", [](nlohmann::json& j) {
      j["apply_residual_connection_post_layernorm"] = true;
    });
    CHECK_THROWS_WITH(load_model(dir), Contains("config.json") &&
                                           Contains("'apply_residual_connection_post_layernorm'"));
  }
  SECTION("gemma with an activation the kernels lack") {
    const std::string dir = edited_folder(
        "gemma_act", "gemma-tiny", [](nlohmann::json& j) { j["hidden_activation"] = "relu6"; });
    CHECK_THROWS_WITH(load_model(dir), Contains("config.json") && Contains("'hidden_activation'") &&
                                           Contains("relu6"));
  }
  SECTION("a causal bloom folder declared a classifier has no score head") {
    const std::string dir = edited_folder("bloom_no_score", "bloom-tiny", [](nlohmann::json& j) {
      j["architectures"] = {"BloomForSequenceClassification"};
    });
    CHECK_THROWS_WITH(load_model(dir), Contains("'score.weight'") && Contains("missing"));
  }
}

TEST_CASE("classification errors name the tensor, the sequence and the model", "[decoders]") {
  const Model model = make_random_model(classifier(bloom_config()), 48);
  std::mt19937 rng(9);
  const Scenario& s = kScenarios[0];
  auto batch = make_batch(s, model.config, rng);
  Injection inj = make_injection(s, model, 3, rng);
  TrainingPass pass(model);
  SECTION("a head of the wrong shape") {
    inj.head["score.weight"] = xt::zeros<float>({size_t(2), size_t(24)});
    CHECK_THROWS_WITH(pass.forward(batch, inj),
                      Contains("'score.weight'") && Contains("[2, 24]") && Contains("[3, 24]"));
  }
  SECTION("a tensor that is not part of the head") {
    inj.head["classifier.weight"] = xt::zeros<float>({size_t(3), size_t(24)});
    CHECK_THROWS_WITH(pass.forward(batch, inj), Contains("'classifier.weight'"));
  }
  SECTION("a class outside the labels") {
    batch[1].class_label = 3;
    CHECK_THROWS_WITH(pass.forward(batch, inj),
                      Contains("batch sequence 1") && Contains("class 3") && Contains("3 classes"));
  }
  SECTION("token labels on a classifier") {
    batch[2].labels.assign(batch[2].tokens.size(), 1);
    CHECK_THROWS_WITH(pass.forward(batch, inj),
                      Contains("batch sequence 2") && Contains("class_label"));
  }
  SECTION("decoding with a classifier that has no LM head") {
    const Model cls = load_model(hf_model("llama-cls-tiny"));
    KVCache cache = make_kv_cache(cls, 8);
    CHECK_THROWS_WITH(extend(cls, cache, {1, 2}), Contains("SEQ_CLS") && Contains("head"));
  }
}
