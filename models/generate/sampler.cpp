#include "models/generate/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "models/common/error.h"

namespace ph {

namespace {

uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

uint64_t rotl(uint64_t x, int k) {
  return (x << k) | (x >> (64 - k));
}

struct Candidate {
  int32_t id;
  double weight;  // unnormalised probability, exp((logit - max) / temperature)
};

// Rejects what no distribution can be made of. -inf is allowed: it is how callers mask
// tokens out.
void check_logits(const xt::xtensor<float, 1>& logits) {
  if (logits.size() == 0) throw Error("sampler: empty logits");
  for (size_t i = 0; i < logits.size(); ++i) {
    const float v = logits(i);
    if (std::isnan(v) || v == std::numeric_limits<float>::infinity())
      throw Error("sampler: logit of token " + std::to_string(i) + " is " +
                  (std::isnan(v) ? "NaN" : "+inf") + " (the model's output is broken)");
  }
}

// The tokens a sampler may draw, in a fixed order, with their weights. The order is
// part of the reproducibility contract: a uniform draw is mapped to a token by walking
// the candidates in this order. Without top-k/top-p it is id order (no sort needed);
// otherwise most likely first, lower id first among equal logits.
std::vector<Candidate> candidates(const xt::xtensor<float, 1>& logits,
                                  const SamplingOptions& options) {
  const int vocab = static_cast<int>(logits.size());
  std::vector<int32_t> order(vocab);
  for (int i = 0; i < vocab; ++i) order[i] = i;
  const auto more_likely = [&](int32_t a, int32_t b) {
    return logits(a) > logits(b) || (logits(a) == logits(b) && a < b);
  };
  const bool by_rank = (options.top_k > 0 && options.top_k < vocab) || options.top_p < 1.0f;
  if (options.top_k > 0 && options.top_k < vocab) {
    std::partial_sort(order.begin(), order.begin() + options.top_k, order.end(), more_likely);
    order.resize(options.top_k);
  } else if (by_rank) {
    std::sort(order.begin(), order.end(), more_likely);
  }

  const double max_logit = logits(argmax(logits));
  if (std::isinf(max_logit)) throw Error("sampler: every logit is -inf");
  const double temperature = options.temperature;
  std::vector<Candidate> out;
  out.reserve(order.size());
  double total = 0;
  for (int32_t id : order) {
    const double w = std::exp((static_cast<double>(logits(id)) - max_logit) / temperature);
    out.push_back({id, w});
    total += w;
  }

  if (options.top_p < 1.0f) {
    // The smallest most-likely-first prefix whose mass reaches top_p; the token that
    // crosses the threshold is kept, so there is always at least one.
    const double threshold = static_cast<double>(options.top_p) * total;
    double cumulative = 0;
    size_t keep = 0;
    while (keep < out.size()) {
      cumulative += out[keep++].weight;
      if (cumulative >= threshold) break;
    }
    out.resize(keep);
  }
  return out;
}

}  // namespace

Rng::Rng(uint64_t seed) {
  uint64_t state = seed;
  for (auto& s : s_) s = splitmix64(state);
}

uint64_t Rng::next_u64() {
  const uint64_t result = rotl(s_[1] * 5, 7) * 9;
  const uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = rotl(s_[3], 45);
  return result;
}

double Rng::next_double() {
  return static_cast<double>(next_u64() >> 11) * 0x1.0p-53;
}

void validate_sampling_options(const SamplingOptions& options) {
  if (!(options.temperature >= 0) || std::isinf(options.temperature))
    throw Error("sampler: temperature must be a finite number >= 0 (0 is greedy), got " +
                std::to_string(options.temperature));
  if (options.top_k < 0)
    throw Error("sampler: top_k must be >= 0 (0 keeps all tokens), got " +
                std::to_string(options.top_k));
  if (!(options.top_p > 0 && options.top_p <= 1))
    throw Error("sampler: top_p must be in (0, 1] (1 keeps all tokens), got " +
                std::to_string(options.top_p));
}

int32_t argmax(const xt::xtensor<float, 1>& logits) {
  if (logits.size() == 0) throw Error("sampler: empty logits");
  int32_t best = 0;
  for (size_t i = 0; i < logits.size(); ++i) {
    if (std::isnan(logits(i)))
      throw Error("sampler: logit of token " + std::to_string(i) + " is NaN");
    if (logits(i) > logits(best)) best = static_cast<int32_t>(i);
  }
  return best;
}

std::vector<double> sampling_distribution(const xt::xtensor<float, 1>& logits,
                                          const SamplingOptions& options) {
  validate_sampling_options(options);
  check_logits(logits);
  std::vector<double> probs(logits.size(), 0.0);
  if (options.temperature == 0) {
    probs[argmax(logits)] = 1.0;
    return probs;
  }
  const std::vector<Candidate> kept = candidates(logits, options);
  double total = 0;
  for (const auto& c : kept) total += c.weight;
  for (const auto& c : kept) probs[c.id] = c.weight / total;
  return probs;
}

Sampler::Sampler(const SamplingOptions& options, uint64_t seed) : options_(options), rng_(seed) {
  validate_sampling_options(options_);
}

int32_t Sampler::sample(const xt::xtensor<float, 1>& logits) {
  check_logits(logits);
  if (options_.temperature == 0) return argmax(logits);
  const std::vector<Candidate> kept = candidates(logits, options_);
  double total = 0;
  for (const auto& c : kept) total += c.weight;
  const double u = rng_.next_double() * total;
  double cumulative = 0;
  for (const auto& c : kept) {
    cumulative += c.weight;
    if (u < cumulative) return c.id;
  }
  // Rounding can leave u a hair above the last partial sum: the draw belongs to the
  // last token that has any weight.
  for (auto it = kept.rbegin(); it != kept.rend(); ++it)
    if (it->weight > 0) return it->id;
  return kept.front().id;  // unreachable: the argmax always has weight 1
}

}  // namespace ph
