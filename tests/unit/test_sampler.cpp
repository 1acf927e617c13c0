// The sampler: greedy, temperature, top-k, top-p, and reproducible seeded draws.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include <catch.hpp>

#include "models/common/error.h"
#include "models/generate/sampler.h"

namespace {

using ph::Sampler;
using ph::SamplingOptions;

xt::xtensor<float, 1> logits_of(const std::vector<float>& values) {
  xt::xtensor<float, 1> out = xt::zeros<float>({values.size()});
  std::copy(values.begin(), values.end(), out.begin());
  return out;
}

// Deterministic pseudo-random logits in [-4, 4) for property tests.
xt::xtensor<float, 1> random_logits(ph::Rng& rng, size_t vocab) {
  xt::xtensor<float, 1> out = xt::zeros<float>({vocab});
  for (auto& v : out) v = static_cast<float>(8 * rng.next_double() - 4);
  return out;
}

// softmax(logits / T) over `ids` only, in double, written independently of the sampler.
std::vector<double> softmax_over(const std::vector<float>& logits, double temperature,
                                 const std::vector<int>& ids) {
  std::vector<double> p(logits.size(), 0.0);
  double total = 0;
  for (int i : ids) total += p[i] = std::exp(logits[i] / temperature);
  for (double& v : p) v /= total;
  return p;
}

std::vector<int> all_ids(size_t n) {
  std::vector<int> ids(n);
  std::iota(ids.begin(), ids.end(), 0);
  return ids;
}

std::vector<long> draw_counts(Sampler& sampler, const xt::xtensor<float, 1>& logits, long n) {
  std::vector<long> counts(logits.size(), 0);
  for (long i = 0; i < n; ++i) ++counts.at(sampler.sample(logits));
  return counts;
}

// The largest deviation of the counts from n*p, in standard deviations of the binomial
// count, sqrt(n p (1-p)). A token with p = 0 that was drawn counts as infinitely far.
double max_sigma(const std::vector<long>& counts, const std::vector<double>& p, long n) {
  double worst = 0;
  for (size_t i = 0; i < counts.size(); ++i) {
    const double expected = n * p[i];
    const double sd = std::sqrt(n * p[i] * (1 - p[i]));
    const double dev = std::abs(counts[i] - expected);
    worst = std::max(worst, sd > 0 ? dev / sd : (dev > 0 ? INFINITY : 0.0));
  }
  return worst;
}

const std::vector<float> kLogits = {0.5f, 1.5f, -0.3f, 2.0f, 0.0f, 1.0f, -1.0f, 0.7f};

}  // namespace

TEST_CASE("Rng: xoshiro256** seeded by splitmix64 gives the reference stream") {
  // Expected values from an independent (Python) implementation of the published
  // algorithms: these pin the stream on every platform and standard library.
  ph::Rng rng(0);
  CHECK(rng.next_u64() == 0x99ec5f36cb75f2b4ULL);
  CHECK(rng.next_u64() == 0xbf6e1f784956452aULL);
  CHECK(rng.next_u64() == 0x1a5f849d4933e6e0ULL);
  CHECK(rng.next_u64() == 0x6aa594f1262d2d2cULL);
  ph::Rng rng42(42);
  CHECK(rng42.next_u64() == 0x15780b2e0c2ec716ULL);

  ph::Rng unit(7);
  for (int i = 0; i < 10000; ++i) {
    const double u = unit.next_double();
    REQUIRE(u >= 0.0);
    REQUIRE(u < 1.0);
  }
}

TEST_CASE("argmax picks the largest logit, the lowest id on ties, and rejects NaN") {
  CHECK(ph::argmax(logits_of(kLogits)) == 3);
  CHECK(ph::argmax(logits_of({1.0f, 5.0f, 5.0f, -2.0f})) == 1);
  CHECK(ph::argmax(logits_of({-INFINITY, -3.0f})) == 1);
  CHECK_THROWS_AS(ph::argmax(logits_of({1.0f, NAN})), ph::Error);
}

TEST_CASE("greedy, top-k = 1 and a tiny top-p all pick the argmax") {
  ph::Rng rng(123);
  SamplingOptions greedy;
  greedy.temperature = 0;
  SamplingOptions top1;
  top1.temperature = 1.5f;
  top1.top_k = 1;
  SamplingOptions tiny_p;
  tiny_p.temperature = 1.5f;
  tiny_p.top_p = 1e-6f;
  Sampler s_greedy(greedy, 1), s_top1(top1, 2), s_tiny_p(tiny_p, 3);
  for (int trial = 0; trial < 300; ++trial) {
    const auto logits = random_logits(rng, 50);
    const int32_t best = ph::argmax(logits);
    REQUIRE(s_greedy.sample(logits) == best);
    REQUIRE(s_top1.sample(logits) == best);
    REQUIRE(s_tiny_p.sample(logits) == best);
  }
}

TEST_CASE("the same seed gives the same draws, a different seed different ones") {
  SamplingOptions options;
  options.temperature = 1.0f;
  options.top_k = 20;
  options.top_p = 0.9f;
  ph::Rng rng(5);
  std::vector<xt::xtensor<float, 1>> steps;
  for (int i = 0; i < 500; ++i) steps.push_back(random_logits(rng, 64));

  auto run = [&](uint64_t seed) {
    Sampler sampler(options, seed);
    std::vector<int32_t> out;
    for (const auto& logits : steps) out.push_back(sampler.sample(logits));
    return out;
  };
  CHECK(run(99) == run(99));
  CHECK(run(99) != run(100));
}

TEST_CASE("seeded draws match the reference sequence (cross-platform reproducibility)") {
  // Computed by an independent Python implementation of the same contract: weights
  // exp((logit - max) / T) in id order, u = next_double() * total, first cumulative > u.
  SamplingOptions options;
  options.temperature = 0.8f;
  Sampler sampler(options, 42);
  const auto logits = logits_of(kLogits);
  std::vector<int32_t> got;
  for (int i = 0; i < 16; ++i) got.push_back(sampler.sample(logits));
  CHECK(got == std::vector<int32_t>{1, 3, 3, 7, 7, 4, 3, 5, 4, 3, 3, 1, 5, 3, 3, 5});
}

TEST_CASE("empirical frequencies match softmax(logits / T)") {
  // Each token's count is binomial(n, p): it lies within 5 standard deviations of n*p
  // except with probability ~6e-7 per token, so a correct sampler passes (and with a
  // fixed seed the outcome is fixed anyway). A sampler ignoring the temperature is off
  // by far more: checked below, so this test has the power to fail.
  const long n = 200000;
  SamplingOptions options;
  options.temperature = 0.7f;
  Sampler sampler(options, 2024);
  const auto counts = draw_counts(sampler, logits_of(kLogits), n);
  const auto p = softmax_over(kLogits, options.temperature, all_ids(kLogits.size()));
  CHECK(max_sigma(counts, p, n) < 5.0);
  const auto p_untempered = softmax_over(kLogits, 1.0, all_ids(kLogits.size()));
  CHECK(max_sigma(counts, p_untempered, n) > 20.0);

  // The exposed distribution is the same one.
  const auto exposed = ph::sampling_distribution(logits_of(kLogits), options);
  for (size_t i = 0; i < p.size(); ++i) CHECK(exposed[i] == Approx(p[i]).epsilon(1e-9));
}

TEST_CASE("top-k samples the renormalised softmax of the k best, never another token") {
  const long n = 100000;
  SamplingOptions options;
  options.temperature = 1.3f;
  options.top_k = 3;
  Sampler sampler(options, 77);
  const auto counts = draw_counts(sampler, logits_of(kLogits), n);
  // kLogits' three best: 3 (2.0), 1 (1.5), 5 (1.0).
  const auto p = softmax_over(kLogits, options.temperature, {3, 1, 5});
  CHECK(max_sigma(counts, p, n) < 5.0);

  // Random logits: every draw is among the k best, and every one of them is drawn.
  ph::Rng rng(8);
  const auto logits = random_logits(rng, 100);
  std::vector<int> order = all_ids(100);
  std::sort(order.begin(), order.end(), [&](int a, int b) { return logits(a) > logits(b); });
  options.top_k = 5;
  Sampler wide(options, 9);
  std::vector<long> hits(100, 0);
  for (int i = 0; i < 20000; ++i) ++hits[wide.sample(logits)];
  for (int rank = 0; rank < 100; ++rank) {
    INFO("rank " << rank << " token " << order[rank]);
    if (rank < 5)
      CHECK(hits[order[rank]] > 0);
    else
      CHECK(hits[order[rank]] == 0);
  }
}

TEST_CASE("top-p keeps the smallest most-likely set reaching p") {
  // Probabilities 0.5, 0.3, 0.15, 0.05 at T = 1: p = 0.75 needs the first two (0.8).
  const std::vector<float> logits = {std::log(0.15f), std::log(0.5f), std::log(0.05f),
                                     std::log(0.3f)};
  SamplingOptions options;
  options.temperature = 1.0f;
  options.top_p = 0.75f;
  const long n = 100000;
  Sampler sampler(options, 31);
  const auto counts = draw_counts(sampler, logits_of(logits), n);
  CHECK(counts[0] == 0);
  CHECK(counts[2] == 0);
  const auto p = softmax_over(logits, 1.0, {1, 3});  // 0.625, 0.375
  CHECK(max_sigma(counts, p, n) < 5.0);
  // p = 0.85 needs the third (0.5 + 0.3 < 0.85 <= 0.95).
  options.top_p = 0.85f;
  const auto dist = ph::sampling_distribution(logits_of(logits), options);
  CHECK(dist[0] > 0);
  CHECK(dist[2] == 0);
  CHECK(dist[0] + dist[1] + dist[3] == Approx(1.0));
}

TEST_CASE("masked (-inf) tokens are never drawn; broken logits and options are errors") {
  SamplingOptions options;
  options.temperature = 2.0f;
  Sampler sampler(options, 4);
  const auto logits = logits_of({-INFINITY, 0.0f, -INFINITY, 0.1f});
  for (int i = 0; i < 5000; ++i) {
    const int32_t t = sampler.sample(logits);
    REQUIRE((t == 1 || t == 3));
  }
  CHECK_THROWS_AS(sampler.sample(logits_of({0.0f, NAN})), ph::Error);
  CHECK_THROWS_AS(sampler.sample(logits_of({0.0f, INFINITY})), ph::Error);
  CHECK_THROWS_AS(sampler.sample(logits_of({-INFINITY, -INFINITY})), ph::Error);

  SamplingOptions bad;
  bad.temperature = -1;
  CHECK_THROWS_AS(Sampler(bad, 0), ph::Error);
  bad = SamplingOptions{};
  bad.top_p = 0;
  CHECK_THROWS_AS(Sampler(bad, 0), ph::Error);
  bad = SamplingOptions{};
  bad.top_k = -2;
  CHECK_THROWS_AS(Sampler(bad, 0), ph::Error);
}
