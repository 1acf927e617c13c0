// The encoder-decoder engine (t5): finite-difference checks of every backward path it
// adds (the attention kernel with a distance bias and with contexts only, as cross-
// attention uses it; the whole pass to encoder virtual tokens through the bidirectional
// encoder and the cross-attention, to decoder virtual tokens, to a decoder prefix in
// PEFT's layout and to a prefix in every attention), T5's relative buckets, config
// errors, and greedy KV-cached generation against the full forward on t5-tiny.
//
// Float32 differences are noisy, so each check is along directions (gradient_check.h).
#include <catch.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>

#include <xtensor/xview.hpp>

#include "gradient_check.h"
#include "hf_case.h"
#include "models/engine/attention.h"
#include "models/engine/engine.h"
#include "models/engine/t5_block.h"
#include "models/generate/seq2seq_generate.h"
#include "models/loader/random_model.h"
#include "test_support.h"

namespace fs = std::filesystem;
using namespace ph;

namespace {

// ---------------------------------------------------------------- attention kernel

// Two segments over random q, k, v: a causal one seeing a context span at positions
// 0..n-1 with its own keys after them, under a distance bias (the decoder with a
// prefix), and one with contexts only (cross-attention, no bias use: own.n = 0).
struct KernelCase {
  int H = 2, hd = 4, n_ctx = 3, len_self = 5, len_cross = 4, n_enc = 6;
  std::vector<float> q_self, kv_self, ctx_k, ctx_v, q_cross, enc_k, enc_v, w_self, w_cross;
  std::vector<float> table;
  DistanceBias bias;
  int positions = 0;

  explicit KernelCase(std::mt19937& rng) {
    std::normal_distribution<float> normal(0.0f, 0.7f);
    auto draw = [&](size_t n) {
      std::vector<float> v(n);
      for (auto& x : v) x = normal(rng);
      return v;
    };
    q_self = draw((size_t)len_self * H * hd);
    kv_self = draw((size_t)len_self * 2 * H * hd);  // per row [k | v]
    ctx_k = draw((size_t)H * n_ctx * hd);
    ctx_v = draw((size_t)H * n_ctx * hd);
    q_cross = draw((size_t)len_cross * H * hd);
    enc_k = draw((size_t)n_enc * H * hd);
    enc_v = draw((size_t)n_enc * H * hd);
    w_self = draw((size_t)len_self * H * hd);
    w_cross = draw((size_t)len_cross * H * hd);
    positions = n_ctx + len_self;
    table = draw((size_t)H * (2 * positions - 1));
    bias = DistanceBias{table.data(), positions - 1, (size_t)(2 * positions - 1)};
  }

  // Every input, in a fixed order, for perturbing and for its gradient.
  std::vector<std::vector<float>*> inputs() {
    return {&q_self, &kv_self, &ctx_k, &ctx_v, &q_cross, &enc_k, &enc_v};
  }

  // loss = Σ w ⊙ out over both segments; with grads set, fills them (same order as inputs()).
  double run(std::vector<std::vector<float>>* grads) {
    const size_t qd = (size_t)H * hd, kvs = 2 * qd;
    std::vector<float> out_self(len_self * qd), out_cross(len_cross * qd);
    std::vector<float> lse_self(H * len_self), lse_cross(H * len_cross);
    if (grads) {
      grads->clear();
      for (auto* in : inputs()) grads->emplace_back(in->size(), 0.0f);
    }
    auto g = [&](int i) { return grads ? (*grads)[i].data() : nullptr; };
    AttentionSegment self;
    self.len = len_self;
    self.q_pos0 = n_ctx;
    self.causal = true;
    self.q = q_self.data();
    self.dq = g(0);
    self.q_stride = qd;
    KVSpan ctx;
    ctx.k = ctx_k.data(), ctx.v = ctx_v.data(), ctx.n = n_ctx, ctx.pos_stride = hd;
    ctx.head_stride = (size_t)n_ctx * hd, ctx.dk = g(2), ctx.dv = g(3), ctx.pos0 = 0;
    self.context = {ctx};
    self.own.k = kv_self.data(), self.own.v = kv_self.data() + qd, self.own.n = len_self;
    self.own.pos_stride = kvs, self.own.head_stride = hd, self.own.pos0 = n_ctx;
    if (grads) self.own.dk = g(1), self.own.dv = g(1) + qd;
    self.out = out_self.data(), self.out_stride = qd, self.lse = lse_self.data();
    self.dout = w_self.data();

    AttentionSegment cross;
    cross.len = len_cross;
    cross.causal = false;
    cross.q = q_cross.data();
    cross.dq = g(4);
    cross.q_stride = qd;
    KVSpan enc;
    enc.k = enc_k.data(), enc.v = enc_v.data(), enc.n = n_enc, enc.pos_stride = qd;
    enc.head_stride = hd, enc.dk = g(5), enc.dv = g(6);
    cross.context = {enc};
    cross.out = out_cross.data(), cross.out_stride = qd, cross.lse = lse_cross.data();
    cross.dout = w_cross.data();

    const AttentionShape biased{H, H, hd, 1.0f, &bias}, plain{H, H, hd, 1.0f, nullptr};
    attention_forward(biased, {self});
    attention_forward(plain, {cross});
    if (grads) {
      attention_backward(biased, {self});
      attention_backward(plain, {cross});
    }
    double loss = 0.0;
    for (size_t i = 0; i < out_self.size(); ++i) loss += (double)out_self[i] * w_self[i];
    for (size_t i = 0; i < out_cross.size(); ++i) loss += (double)out_cross[i] * w_cross[i];
    return loss;
  }
};

// ---------------------------------------------------------------- whole pass

ModelConfig t5_config(bool gated, int decoder_layers) {
  ModelConfig c;
  set_family(c, Arch::kT5);
  c.n_layers = 2;
  c.n_decoder_layers = decoder_layers;
  c.dim = 24;
  c.n_heads = 3;
  c.n_kv_heads = 3;
  c.head_dim = 10;  // heads * head_dim != dim, as in t5-tiny
  c.ffn_dim = 32;
  c.vocab_size = 40;
  c.max_positions = 64;
  c.relative_buckets = 8;
  c.relative_max_distance = 12;  // short: distances in the batch reach the log buckets
  c.gated_mlp = gated;
  c.activation = gated ? Activation::kGeluTanh : Activation::kRelu;
  c.tied_head = !gated;
  c.decoder_start_id = 0;
  return c;
}

struct Scenario {
  const char* name;
  int n_virtual = 0;          // encoder virtual tokens (slots 0..n-1 first)
  int n_decoder_virtual = 0;  // decoder virtual tokens (slots n..n+m-1 first, unscored)
  bool per_example = false;
  int prefix = 0;
  bool prefix_all_attention = false;
};

std::vector<Sequence> make_batch(const Scenario& s, int vocab, std::mt19937& rng) {
  std::vector<Sequence> batch;
  const int enc_lengths[] = {7, 3, 15}, dec_lengths[] = {4, 6, 2};
  for (int b = 0; b < 3; ++b) {
    Sequence seq;
    for (int k = 0; k < s.n_virtual; ++k) seq.tokens.push_back(virtual_slot(k));
    for (int t = 0; t < enc_lengths[b]; ++t) seq.tokens.push_back(1 + (int32_t)(rng() % (vocab - 1)));
    for (int k = 0; k < s.n_decoder_virtual; ++k) {
      seq.decoder_tokens.push_back(virtual_slot(s.n_virtual + k));
      seq.decoder_labels.push_back(kIgnoreLabel);
    }
    seq.decoder_tokens.push_back(0);
    for (int t = 0; t < dec_lengths[b]; ++t) {
      const int32_t target = (int32_t)(rng() % vocab);
      seq.decoder_labels.push_back(t == 1 ? kIgnoreLabel : target);
      seq.decoder_tokens.push_back(target);
    }
    seq.decoder_tokens.pop_back();
    batch.push_back(std::move(seq));
  }
  return batch;
}

Injection make_injection(const Scenario& s, const ModelConfig& c, std::mt19937& rng) {
  std::normal_distribution<float> normal(0.0f, 0.5f);
  Injection inj;
  const int rows = s.n_virtual + s.n_decoder_virtual;
  if (rows) {
    inj.virtual_tokens = xt::zeros<float>({s.per_example ? 3 : 1, rows, c.dim});
    for (auto& v : inj.virtual_tokens) v = normal(rng);
  }
  if (s.prefix) {
    const int blocks = s.prefix_all_attention ? c.n_layers + 2 * c.n_decoder_layers : c.n_layers;
    inj.prefix = xt::zeros<float>({blocks, 2, c.n_kv_heads, s.prefix, c.head_dim});
    for (auto& v : inj.prefix) v = normal(rng);
  }
  return inj;
}

void check_pass_gradient(const Model& model, const Scenario& s, uint32_t seed) {
  std::mt19937 rng(seed);
  const auto batch = make_batch(s, model.config.vocab_size, rng);
  const Injection inj = make_injection(s, model.config, rng);
  const PassOptions options{false, false, s.prefix_all_attention};
  TrainingPass pass(model, options);
  REQUIRE(std::isfinite(pass.forward(batch, inj)));
  REQUIRE(pass.scored_count() > 0);
  InjectionGrad grad;
  pass.backward(grad);
  const auto g = test::trained_grad(grad);
  test::check_directions(model, batch, inj, g, 0, g.size(), s.name, rng, options);
}

const Scenario kScenarios[] = {
    {"encoder virtual tokens (prompt tuning: bidirectional encoder, cross-attention)", 4},
    {"per-example encoder and decoder virtual tokens (multitask)", 3, 3, true},
    {"decoder prefix, PEFT's block mapping", 0, 0, false, 4},
    {"a prefix in every attention (encoder, decoder, cross)", 0, 0, false, 3, true},
    {"prefix with encoder virtual tokens", 3, 0, false, 2},
};

std::string write_config(const std::string& name, const nlohmann::json& config) {
  const fs::path dir = test::temp_dir(name);
  const std::string path = (dir / "config.json").string();
  std::ofstream(path) << config.dump();
  return path;
}

nlohmann::json t5_tiny_config() {
  std::ifstream in(test::source_path("tests/fixtures/hf/models/t5-tiny/config.json"));
  return nlohmann::json::parse(in);
}

}  // namespace

TEST_CASE("attention with a distance bias and cross-attention match finite differences",
          "[t5]") {
  std::mt19937 rng(3);
  KernelCase k(rng);
  std::vector<std::vector<float>> grads;
  k.run(&grads);
  std::vector<float> g;
  for (const auto& v : grads) g.insert(g.end(), v.begin(), v.end());
  auto along = [&](const std::vector<double>& u, double eps) {
    KernelCase moved = k;
    size_t i = 0;
    for (auto* in : moved.inputs())
      for (auto& v : *in) v += (float)(eps * u[i++]);
    moved.bias.table = moved.table.data();
    return moved.run(nullptr);
  };
  test::check_function_directions(along, g, 0, g.size(), "attention kernel", rng);
}

TEST_CASE("t5 relative position buckets follow transformers' formula", "[t5]") {
  // bidirectional, 32 buckets, max distance 128: 16 per direction, 8 exact
  CHECK(relative_bucket(0, true, 32, 128) == 0);
  CHECK(relative_bucket(-3, true, 32, 128) == 3);   // key before the query
  CHECK(relative_bucket(3, true, 32, 128) == 19);   // key after: the upper half
  // 8 + floor(log(20/8) / log(128/8) * 8) = 8 + floor(2.64)
  CHECK(relative_bucket(-20, true, 32, 128) == 10);
  CHECK(relative_bucket(20, true, 32, 128) == 26);
  CHECK(relative_bucket(-1000, true, 32, 128) == 15);  // beyond max distance: the last
  // causal: keys after the query share bucket 0; 16 exact, then 16 + floor(log(20/16) /
  // log(8) * 16) = 16 + floor(1.72)
  CHECK(relative_bucket(5, false, 32, 128) == 0);
  CHECK(relative_bucket(-5, false, 32, 128) == 5);
  CHECK(relative_bucket(-20, false, 32, 128) == 17);
  CHECK(relative_bucket(-1000, false, 32, 128) == 31);
}

TEST_CASE("t5 pass gradients match finite differences", "[t5]") {
  const Model gated = make_random_model(t5_config(true, 2), 41);
  const Model relu_three = make_random_model(t5_config(false, 3), 42);  // 3 decoder layers
  uint32_t seed = 300;
  for (const auto& s : kScenarios) {
    check_pass_gradient(gated, s, seed++);
    check_pass_gradient(relu_three, s, seed++);
  }
}

TEST_CASE("t5 pass: recompute gives the same loss and gradient", "[t5]") {
  const Model model = make_random_model(t5_config(true, 2), 43);
  std::mt19937 rng(7);
  const Scenario s = kScenarios[4];
  const auto batch = make_batch(s, model.config.vocab_size, rng);
  const Injection inj = make_injection(s, model.config, rng);
  TrainingPass keep(model), recompute(model, PassOptions{true, false});
  CHECK(keep.forward(batch, inj) == recompute.forward(batch, inj));
  InjectionGrad a, b;
  keep.backward(a);
  recompute.backward(b);
  CHECK(std::vector<float>(a.virtual_tokens.begin(), a.virtual_tokens.end()) ==
        std::vector<float>(b.virtual_tokens.begin(), b.virtual_tokens.end()));
  CHECK(std::vector<float>(a.prefix.begin(), a.prefix.end()) ==
        std::vector<float>(b.prefix.begin(), b.prefix.end()));
}

TEST_CASE("t5 config errors name the file and the field", "[t5]") {
  nlohmann::json no_buckets = t5_tiny_config();
  no_buckets.erase("relative_attention_num_buckets");
  const std::string path = write_config("t5_no_buckets", no_buckets);
  const std::string missing = test::error_of([&] { parse_hf_config(path); });
  CHECK(missing.find(path) != std::string::npos);
  CHECK(missing.find("relative_attention_num_buckets") != std::string::npos);

  for (const char* proj : {"gated-swiglu", "swiglu", "double-gelu"}) {
    nlohmann::json bad = t5_tiny_config();
    bad["feed_forward_proj"] = proj;
    const std::string p = write_config("t5_bad_proj", bad);
    const std::string msg = test::error_of([&] { parse_hf_config(p); });
    INFO(msg);
    CHECK(msg.find(p) != std::string::npos);
    CHECK(msg.find("feed_forward_proj") != std::string::npos);
    CHECK(msg.find(proj) != std::string::npos);
  }

  nlohmann::json few = t5_tiny_config();
  few["relative_attention_num_buckets"] = 2;  // no exact range: the formula would divide by 0
  const std::string p = write_config("t5_few_buckets", few);
  CHECK(test::error_of([&] { parse_hf_config(p); }).find("relative position buckets") !=
        std::string::npos);
}

TEST_CASE("t5 configs read as transformers reads them", "[t5]") {
  const ModelConfig tiny = parse_hf_config(test::source_path("tests/fixtures/hf/models/t5-tiny/config.json"));
  CHECK(tiny.stacks == Stacks::kEncoderDecoder);
  CHECK(tiny.task == TaskType::kSeq2SeqLm);
  CHECK(tiny.gated_mlp);
  CHECK(tiny.activation == Activation::kGeluTanh);  // gated-gelu is gelu_new
  CHECK(tiny.q_dim() == 64);
  CHECK(!tiny.tied_head);
  nlohmann::json v10 = t5_tiny_config();
  v10["feed_forward_proj"] = "gated-silu";
  v10.erase("num_decoder_layers");
  v10["num_layers"] = 3;
  const ModelConfig silu = parse_hf_config(write_config("t5_silu", v10));
  CHECK(silu.activation == Activation::kSilu);
  CHECK(silu.gated_mlp);
  CHECK(silu.n_decoder_layers == 3);  // defaults to num_layers
}

// generate_seq2seq's greedy output, each token checked against the argmax of the full
// forward (TrainingPass) over the decoder input so far.
void check_greedy(const Model& model, const Injection& inj, const Seq2SeqInput& input) {
  GenerateOptions options;
  options.max_new_tokens = 6;
  options.sampling.temperature = 0.0f;
  options.stop_ids = stop_ids(model.config, -1);
  const auto generated = generate_seq2seq(model, inj, input, options);
  REQUIRE(!generated.empty());
  Sequence full;
  full.tokens = input.encoder;
  full.decoder_tokens = input.decoder_lead;
  full.decoder_tokens.push_back(model.config.decoder_start_id);
  for (size_t k = 0; k < generated.size(); ++k) {
    full.decoder_labels.assign(full.decoder_tokens.size(), kIgnoreLabel);
    TrainingPass pass(model, PassOptions{false, true, input.prefix_all_attention});
    pass.forward({full}, inj);
    const auto& logits = pass.logits().at(0);
    const size_t last = logits.shape(0) - 1;
    int best = 0;
    for (size_t v = 1; v < logits.shape(1); ++v)
      if (logits(last, v) > logits(last, best)) best = (int)v;
    CHECK(generated[k] == best);
    full.decoder_tokens.push_back(generated[k]);
  }
  if (generated.back() != model.config.eos_id) CHECK(generated.size() == 6);
}

TEST_CASE("t5 greedy generation equals step-by-step argmax of the full forward", "[t5]") {
  const std::string root = test::source_path("tests/fixtures/hf");
  const Model model = load_model(root + "/models/t5-tiny");
  for (const char* kind :
       {"prompt_tuning", "prefix_tuning", "p_tuning_lstm", "multitask_prompt_tuning"}) {
    INFO(kind);
    const SafetensorsFile f(root + "/cases/t5-tiny__" + kind + ".safetensors");
    const test::HfCase c = test::read_hf_case(f);
    Injection inj = c.injection;
    if (inj.virtual_tokens.size() && inj.virtual_tokens.shape(0) > 1)  // multitask: row 0's set
      inj.virtual_tokens = xt::xtensor<float, 3>(xt::view(inj.virtual_tokens, xt::range(0, 1)));
    Seq2SeqInput input;
    input.encoder = c.batch[0].tokens;
    for (int32_t t : c.batch[0].decoder_tokens)
      if (is_virtual(t)) input.decoder_lead.push_back(t);
    check_greedy(model, inj, input);
  }
  {
    INFO("a prefix in every attention");
    std::mt19937 rng(9);
    const ModelConfig& mc = model.config;
    const Scenario s{"all", 0, 0, false, 3, true};
    Seq2SeqInput input;
    input.encoder = make_batch(s, mc.vocab_size, rng)[2].tokens;
    input.prefix_all_attention = true;
    check_greedy(model, make_injection(s, mc, rng), input);
  }
}
