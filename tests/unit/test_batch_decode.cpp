// BatchDecoder (models/engine/batch_decode.h): a sequence's logits and cache are
// bit-identical alone, in a batch of other sequences (other caches, prefixes, virtual
// rows, lengths), with its prompt cut into chunks, and for 1 or 2 threads; they agree
// with the training pass (an independent path: BLAS products, segment attention); bad
// items are refused before anything changes.
#include <catch.hpp>

#include <cstring>
#include <random>

#include <xtensor/xview.hpp>

#include "gradient_check.h"
#include "models/engine/batch_decode.h"
#include "models/engine/engine.h"
#include "models/loader/random_model.h"
#include "test_support.h"

using namespace ph;
using Catch::Matchers::Contains;

namespace {

struct NamedModel {
  std::string name;
  Model model;
};

ModelConfig small(Arch arch, int dim, int heads, int kv_heads, int head_dim, int ffn, int vocab) {
  ModelConfig c;
  set_family(c, arch);
  c.n_layers = 2, c.dim = dim, c.n_heads = heads, c.n_kv_heads = kv_heads, c.head_dim = head_dim;
  c.ffn_dim = ffn, c.vocab_size = vocab, c.max_positions = 96, c.tied_head = true;
  return c;
}

// The fixture models of every causal family, plus random ones with widths that fill no
// vector (the kernels' tails) and one wide enough for the products and the attention to
// be split over threads.
const std::vector<NamedModel>& models() {
  static const std::vector<NamedModel> all = [] {
    const std::string f = test::fixtures_dir();
    std::vector<NamedModel> m;
    m.push_back({"llama-tiny", load_model(f + "/models/llama-tiny")});
    m.push_back({"gpt2-tiny", load_model(f + "/models/gpt2-tiny")});
    m.push_back({"bloom-tiny", load_model(f + "/hf/models/bloom-tiny")});
    m.push_back({"gemma-tiny", load_model(f + "/hf/models/gemma-tiny")});
    m.push_back({"qwen2-tiny", load_model(f + "/hf/models/qwen2-tiny")});
    m.push_back(
        {"bloom odd widths", make_random_model(small(Arch::kBloom, 24, 6, 6, 4, 40, 41), 7)});
    ModelConfig gemma = small(Arch::kGemma, 24, 4, 1, 10, 36, 43);
    gemma.embed_scale = std::sqrt(24.0f);
    m.push_back({"gemma odd widths", make_random_model(gemma, 8)});
    m.push_back({"gpt2 wide", make_random_model(small(Arch::kGpt2, 256, 4, 4, 64, 1024, 2048), 9)});
    return m;
  }();
  return all;
}

// One sequence of a test: its cache before the step (a prefix and earlier tokens in it,
// or empty), the tokens it runs, and its virtual rows.
struct Case {
  KVCache cache;
  std::vector<int32_t> tokens;
  xt::xtensor<float, 2> rows;  // [n, dim] or empty
  xt::xtensor<float, 5> prefix;
  std::vector<int32_t> before;  // tokens already in the cache (after the prefix)
};

struct Result {
  xt::xtensor<float, 2> logits;  // [tokens, vocab]
  KVCache cache;
};

DecodeItem item_of(Case& s, KVCache& cache, size_t t0, size_t t1, bool all_logits) {
  DecodeItem item;
  item.cache = &cache;
  item.tokens.assign(s.tokens.begin() + t0, s.tokens.begin() + t1);
  item.virtual_rows = s.rows.size() ? &s.rows : nullptr;
  item.all_logits = all_logits;
  return item;
}

// Four sequences unlike each other: an empty cache, a prefix, virtual rows before and
// among the ids, and one that decodes a token after a prompt already in its cache.
std::vector<Case> make_sequences(const Model& model, uint32_t seed, int prompt = 7) {
  const ModelConfig& c = model.config;
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 0.5f);
  auto id = [&] { return (int32_t)(rng() % c.vocab_size); };
  auto start = [&](Case& s, int n_prefix) {
    s.cache = make_kv_cache(model, 48);
    if (n_prefix) {
      s.prefix = test::random_injection(c, 1, 0, n_prefix, normal, rng).prefix;
      append_prefix(s.cache, s.prefix);
    }
  };
  std::vector<Case> seqs(4);
  start(seqs[0], 0);
  for (int t = 0; t < prompt; ++t) seqs[0].tokens.push_back(id());
  start(seqs[1], 3);
  for (int t = 0; t < 5; ++t) seqs[1].tokens.push_back(id());
  start(seqs[2], 0);
  seqs[2].rows = xt::view(test::random_injection(c, 1, 3, 0, normal, rng).virtual_tokens, 0,
                          xt::all(), xt::all());
  seqs[2].tokens = {virtual_slot(0), virtual_slot(1), id(), id(), virtual_slot(2), id()};
  start(seqs[3], 2);
  for (int t = 0; t < 4; ++t) seqs[3].before.push_back(id());
  extend(model, seqs[3].cache, seqs[3].before);
  seqs[3].tokens = {id()};
  return seqs;
}

// Each sequence's tokens cut into `chunks` pieces, run as consecutive steps; in a step,
// every sequence that still has a piece takes part (with `together`), or each runs alone.
std::vector<Result> run(const Model& model, std::vector<Case> seqs, int chunks, bool together) {
  BatchDecoder decoder(model);
  std::vector<Result> out(seqs.size());
  for (size_t i = 0; i < seqs.size(); ++i) {
    out[i].cache = seqs[i].cache;
    out[i].logits = xt::empty<float>({seqs[i].tokens.size(), size_t(model.config.vocab_size)});
  }
  for (int k = 0; k < chunks; ++k) {
    std::vector<DecodeItem> items;
    std::vector<size_t> owner, first;
    for (size_t i = 0; i < seqs.size(); ++i) {
      const size_t T = seqs[i].tokens.size(), n = std::min<size_t>(chunks, T);
      if ((size_t)k >= n) continue;
      const size_t t0 = T * k / n, t1 = T * (k + 1) / n;
      items.push_back(item_of(seqs[i], out[i].cache, t0, t1, true));
      owner.push_back(i);
      first.push_back(t0);
    }
    auto take = [&](size_t j, const xt::xtensor<float, 2>& logits) {
      REQUIRE(logits.shape(0) == items[j].tokens.size());
      std::memcpy(&out[owner[j]].logits(first[j], 0), logits.data(), logits.size() * sizeof(float));
    };
    std::vector<xt::xtensor<float, 2>> logits;
    if (together) {
      decoder.step(items, logits);
      REQUIRE(logits.size() == items.size());
      for (size_t j = 0; j < items.size(); ++j) take(j, logits[j]);
    } else {
      for (size_t j = 0; j < items.size(); ++j) {
        decoder.step({items[j]}, logits);
        take(j, logits[0]);
      }
    }
  }
  return out;
}

bool same_bits(const float* a, const float* b, size_t n) {
  return std::memcmp(a, b, n * sizeof(float)) == 0;
}

// Logits and the filled part of the cache, bit for bit.
void check_same(const Result& a, const Result& b, const std::string& what) {
  INFO(what);
  REQUIRE(a.logits.shape() == b.logits.shape());
  CHECK(same_bits(a.logits.data(), b.logits.data(), a.logits.size()));
  REQUIRE(a.cache.length == b.cache.length);
  for (size_t l = 0; l < a.cache.keys.size(); ++l)
    for (size_t g = 0; g < a.cache.keys[l].shape(0); ++g) {
      const size_t n = (size_t)a.cache.length * a.cache.keys[l].shape(2);
      CHECK(same_bits(&a.cache.keys[l](g, 0, 0), &b.cache.keys[l](g, 0, 0), n));
      CHECK(same_bits(&a.cache.values[l](g, 0, 0), &b.cache.values[l](g, 0, 0), n));
    }
}

struct ThreadCount {
  explicit ThreadCount(int n) { set_num_threads(n); }
  ~ThreadCount() { set_num_threads(2); }
};

}  // namespace

TEST_CASE("a sequence decodes bit-identically alone, batched, chunked, on 1 or 2 threads",
          "[batch_decode]") {
  for (const auto& [name, model] : models()) {
    INFO(name);
    // The wide model's first sequence is long enough for the attention of a step over it
    // (46 rows, 1081 keys, 4 heads of 64) to be split over threads.
    const auto seqs = make_sequences(model, 11, name == "gpt2 wide" ? 46 : 7);
    std::vector<Result> alone;
    {
      ThreadCount one(1);
      alone = run(model, seqs, 1, false);
    }
    for (int threads : {1, 2}) {
      ThreadCount count(threads);
      const std::string how = " on " + std::to_string(threads) + " thread(s)";
      const auto batched = run(model, seqs, 1, true);
      for (size_t i = 0; i < seqs.size(); ++i)
        check_same(batched[i], alone[i], "sequence " + std::to_string(i) + " batched" + how);
      for (int chunks : {3, 7}) {
        for (bool together : {false, true}) {
          const auto chunked = run(model, seqs, chunks, together);
          for (size_t i = 0; i < seqs.size(); ++i)
            check_same(chunked[i], alone[i],
                       "sequence " + std::to_string(i) + " in " + std::to_string(chunks) +
                           " chunks" + (together ? ", batched" : "") + how);
        }
      }
    }
  }
}

TEST_CASE("a step's logits are the last token's unless all are asked for", "[batch_decode]") {
  const Model& model = models()[0].model;
  auto seqs = make_sequences(model, 12);
  const auto all = run(model, seqs, 1, true);
  std::vector<DecodeItem> items;
  for (auto& s : seqs) items.push_back(item_of(s, s.cache, 0, s.tokens.size(), false));
  items[1].all_logits = true;
  BatchDecoder decoder(model);
  std::vector<xt::xtensor<float, 2>> logits;
  decoder.step(items, logits);
  REQUIRE(logits.size() == 4);
  for (size_t i = 0; i < 4; ++i) {
    INFO("sequence " << i);
    const size_t T = seqs[i].tokens.size(), V = model.config.vocab_size;
    if (i == 1) {
      REQUIRE(logits[i].shape(0) == T);
      CHECK(same_bits(logits[i].data(), all[i].logits.data(), T * V));
    } else {
      REQUIRE(logits[i].shape(0) == 1);
      CHECK(same_bits(logits[i].data(), &all[i].logits(T - 1, 0), V));
    }
    CHECK(seqs[i].cache.length == all[i].cache.length);
  }
  CHECK(decoder.last_step_flops() > 0.0);
}

TEST_CASE("batched decoding agrees with the training pass's logits", "[batch_decode]") {
  for (const auto& [name, model] : models()) {
    INFO(name);
    const ModelConfig& c = model.config;
    const auto seqs = make_sequences(model, 13);
    const auto decoded = run(model, seqs, 1, true);
    for (size_t i = 0; i < seqs.size(); ++i) {
      INFO("sequence " << i);
      const Case& s = seqs[i];
      Sequence full;
      full.tokens = s.before;
      full.tokens.insert(full.tokens.end(), s.tokens.begin(), s.tokens.end());
      Injection injection;
      injection.prefix = s.prefix;
      if (s.rows.size())
        injection.virtual_tokens =
            xt::xtensor<float, 3>(xt::view(s.rows, xt::newaxis(), xt::all(), xt::all()));
      TrainingPass pass(model, PassOptions{false, true});
      pass.forward({full}, injection);
      const auto& reference = pass.logits()[0];  // [real tokens, vocab]
      // the decoded rows of the real tokens, after those already in the cache
      std::vector<float> ours, theirs;
      size_t real = 0;
      for (int32_t t : s.before) real += !is_virtual(t);
      for (size_t t = 0; t < s.tokens.size(); ++t) {
        if (is_virtual(s.tokens[t])) continue;
        ours.insert(ours.end(), &decoded[i].logits(t, 0), &decoded[i].logits(t, 0) + c.vocab_size);
        theirs.insert(theirs.end(), &reference(real, 0), &reference(real, 0) + c.vocab_size);
        ++real;
      }
      REQUIRE(real == reference.shape(0));
      CHECK(test::relative_l2(ours.data(), theirs.data(), ours.size()) < 1e-5);
    }
  }
}

TEST_CASE("bad items are refused, naming the item, before any cache changes", "[batch_decode]") {
  const Model& model = models()[0].model;
  const ModelConfig& c = model.config;
  auto seqs = make_sequences(model, 14);
  std::vector<DecodeItem> good;
  for (auto& s : seqs) good.push_back(item_of(s, s.cache, 0, s.tokens.size(), false));
  std::vector<KVCache> before;
  for (auto& s : seqs) before.push_back(s.cache);
  BatchDecoder decoder(model);
  std::vector<xt::xtensor<float, 2>> logits;
  auto refused = [&](std::vector<DecodeItem> items) {
    const std::string message = test::error_of([&] { decoder.step(items, logits); });
    for (size_t i = 0; i < seqs.size(); ++i) {
      INFO("cache " << i);
      check_same({xt::zeros<float>({1, 1}), seqs[i].cache}, {xt::zeros<float>({1, 1}), before[i]},
                 "unchanged");
    }
    return message;
  };
  auto with = [&](size_t i, auto change) {
    auto items = good;
    change(items[i]);
    return refused(items);
  };
  CHECK_THAT(with(2, [](DecodeItem& d) { d.cache = nullptr; }),
             Contains("decode item 2") && Contains("no cache"));
  CHECK_THAT(with(1, [](DecodeItem& d) { d.tokens.clear(); }),
             Contains("decode item 1") && Contains("no tokens"));
  CHECK_THAT(with(3, [&](DecodeItem& d) { d.tokens[0] = c.vocab_size; }),
             Contains("decode item 3") && Contains("token id 97") && Contains("vocabulary"));
  CHECK_THAT(with(2, [](DecodeItem& d) { d.virtual_rows = nullptr; }),
             Contains("decode item 2") && Contains("virtual slot 0") && Contains("0 given"));
  CHECK_THAT(with(2, [](DecodeItem& d) { d.tokens.push_back(virtual_slot(3)); }),
             Contains("decode item 2") && Contains("virtual slot 3") && Contains("3 given"));
  xt::xtensor<float, 2> narrow = xt::zeros<float>({3, c.dim - 1});
  CHECK_THAT(with(2, [&](DecodeItem& d) { d.virtual_rows = &narrow; }),
             Contains("decode item 2") && Contains("width 63"));
  CHECK_THAT(with(0, [](DecodeItem& d) { d.tokens.resize(49, 1); }),
             Contains("decode item 0") && Contains("49 positions exceed") && Contains("48"));
  CHECK_THAT(with(1, [&](DecodeItem& d) { d.cache = good[3].cache; }),
             Contains("decode item 3") && Contains("another item's"));
  KVCache foreign = make_kv_cache(models()[1].model, 48);  // gpt2-tiny: 4 kv heads
  CHECK_THAT(with(0, [&](DecodeItem& d) { d.cache = &foreign; }),
             Contains("decode item 0") && Contains("does not fit the model"));

  const Model cls = load_model(test::fixtures_dir() + "/hf/models/llama-cls-tiny");
  KVCache cache = make_kv_cache(cls, 8);
  BatchDecoder cls_decoder(cls);
  CHECK_THAT(test::error_of([&] {
               cls_decoder.step({DecodeItem{&cache, {1, 2}}}, logits);
             }),
             Contains("SEQ_CLS") && Contains("no language-model head"));
  CHECK(cache.length == 0);

  ModelConfig bert_config = small(Arch::kBert, 24, 4, 4, 6, 40, 40);
  bert_config.labels = {"a", "b"};
  const Model bert = make_random_model(bert_config, 4);
  KVCache bert_cache = make_kv_cache(bert, 8);
  CHECK_THAT(test::error_of([&] {
               BatchDecoder(bert).step({DecodeItem{&bert_cache, {1}}}, logits);
             }),
             Contains("bert") && Contains("not a causal decoder"));

  // nothing to do is not an error
  decoder.step({}, logits);
  CHECK(logits.empty());
}
