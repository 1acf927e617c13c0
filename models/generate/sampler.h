// Choosing the next token from a model's logits: greedy, temperature, top-k and top-p
// (nucleus) sampling, driven by a seeded generator of our own.
//
// The generator and the arithmetic are written out here rather than taken from
// <random>: std::uniform_*_distribution and friends are implementation-defined and give
// different numbers under libstdc++, libc++ and MSVC. With our own generator the same
// seed picks the same tokens on every platform (up to exp()'s last bit, which would
// matter only if a draw fell within ~1e-16 of a boundary).
#pragma once

#include <cstdint>
#include <vector>

#include <xtensor/xtensor.hpp>

namespace ph {

// xoshiro256** (Blackman & Vigna), its state seeded from the seed by splitmix64, as its
// authors recommend. Fast, 2^256 period, passes BigCrush; not cryptographic.
class Rng {
 public:
  explicit Rng(uint64_t seed);
  uint64_t next_u64();
  // Uniform in [0, 1): the top 53 bits of next_u64(), so every double is exact.
  double next_double();

 private:
  uint64_t s_[4];
};

struct SamplingOptions {
  // Logits are divided by it before the softmax; 0 means greedy (argmax). Lower is
  // more conservative, 1 is the model's own distribution.
  float temperature = 0.8f;
  // Keep only the k most likely tokens; 0 keeps all.
  int top_k = 0;
  // Keep the smallest set of most likely tokens whose probability reaches top_p
  // (after top-k, renormalised, as Hugging Face applies them); 1 keeps all.
  float top_p = 1.0f;
};

// Throws ph::Error if the options are out of range (negative temperature or top_k,
// top_p outside (0, 1]).
void validate_sampling_options(const SamplingOptions& options);

// The id of the largest logit; the lowest id among equal ones. Throws ph::Error on an
// empty vector or a NaN logit.
int32_t argmax(const xt::xtensor<float, 1>& logits);

// The distribution a sampler with `options` draws from: probabilities [vocab], 0 for
// tokens cut by top-k / top-p; a one-hot of argmax() when temperature is 0. Exposed so
// that tests (and callers scoring alternatives) can see exactly what is sampled.
std::vector<double> sampling_distribution(const xt::xtensor<float, 1>& logits,
                                          const SamplingOptions& options);

class Sampler {
 public:
  Sampler(const SamplingOptions& options, uint64_t seed);
  // The next token. Greedy calls draw no random number; every other call draws exactly
  // one, so a seed fixes the whole sequence.
  int32_t sample(const xt::xtensor<float, 1>& logits);
  const SamplingOptions& options() const { return options_; }

 private:
  SamplingOptions options_;
  Rng rng_;
};

}  // namespace ph
