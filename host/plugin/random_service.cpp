#include "host/plugin/random_service.h"

#include <cmath>
#include <string>

#include "host/plugin/dl_tensor.h"
#include "host/plugin/status.h"

namespace ph::host {

namespace {

constexpr uint64_t kGolden = 0x9E3779B97F4A7C15ull;  // splitmix64's increment
constexpr double kTwoPi = 6.283185307179586476925286766559;

// splitmix64's output function: a bijection of 64-bit words with full avalanche.
uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// The starting state of a (seed, stream) sequence. Both inputs go through the mixer so
// that neighbouring seeds or streams start far apart.
uint64_t sequence_key(uint64_t seed, uint64_t stream) {
  return mix64(mix64(seed) ^ mix64(stream + kGolden));
}

// A double in [0, 1) from the top 53 bits.
double unit_interval(uint64_t bits) {
  return (double)(bits >> 11) * 0x1.0p-53;
}

// Checks `out`, then writes value(i) at every element. Nothing is written on error.
template <class T, class Value>
ph_status* fill(const char* what, DLTensor* out, DLDataType dtype, Value&& value) noexcept {
  try {
    const std::string problem = tensor_problem(out, dtype, -1);
    if (!problem.empty())
      return new_status(PH_ERR_INVALID_ARGUMENT,
                        std::string("ph.host.random/1 ") + what + ": the output tensor " + problem);
    T* base = element_base<T>(*out);
    for_each_offset(*out, [&](int64_t i, int64_t offset) { base[offset] = value((uint64_t)i); });
    return nullptr;
  } catch (const std::exception& e) {
    return new_status(PH_ERR_INTERNAL, std::string("ph.host.random/1 ") + what + ": " + e.what());
  }
}

ph_status* invalid(const char* what, const std::string& problem) {
  return new_status(PH_ERR_INVALID_ARGUMENT,
                    std::string("ph.host.random/1 ") + what + ": " + problem);
}

ph_status* fill_normal(const ph_host*, uint64_t seed, uint64_t stream, float mean, float std,
                       DLTensor* out) {
  if (!std::isfinite(mean) || !std::isfinite(std) || std < 0)
    return invalid("fill_normal", "mean and std must be finite and std >= 0, got mean " +
                                      std::to_string(mean) + ", std " + std::to_string(std));
  const uint64_t key = sequence_key(seed, stream);
  return fill<float>("fill_normal", out, kFloat32, [&](uint64_t i) {
    // Box-Muller: draws 2p and 2p+1 make the pair (r cos t, r sin t) of elements 2p, 2p+1.
    const uint64_t pair = i / 2;
    const double u1 = 1.0 - unit_interval(mix64(key + (2 * pair + 1) * kGolden));  // (0, 1]
    const double u2 = unit_interval(mix64(key + (2 * pair + 2) * kGolden));
    const double r = std::sqrt(-2.0 * std::log(u1)), t = kTwoPi * u2;
    const double z = (i % 2 == 0) ? r * std::cos(t) : r * std::sin(t);
    return (float)(mean + std * z);
  });
}

ph_status* fill_uniform(const ph_host*, uint64_t seed, uint64_t stream, float low, float high,
                        DLTensor* out) {
  if (!std::isfinite(low) || !std::isfinite(high) || !(low < high))
    return invalid("fill_uniform", "needs finite low < high, got [" + std::to_string(low) + ", " +
                                       std::to_string(high) + ")");
  const uint64_t key = sequence_key(seed, stream);
  return fill<float>("fill_uniform", out, kFloat32, [&](uint64_t i) {
    const double u = unit_interval(mix64(key + (i + 1) * kGolden));
    const float v = (float)(low + ((double)high - low) * u);
    // Rounding to float can reach `high`; the interval is half-open.
    return v < high ? v : std::nextafter(high, low);
  });
}

ph_status* fill_integers(const ph_host*, uint64_t seed, uint64_t stream, int64_t bound,
                         DLTensor* out) {
  if (bound < 1)
    return invalid("fill_integers", "bound must be >= 1, got " + std::to_string(bound));
  const uint64_t key = sequence_key(seed, stream);
  return fill<int64_t>("fill_integers", out, kInt64, [&](uint64_t i) {
    // Multiply-shift (Lemire): uniform up to a bias of bound / 2^64, with one draw per
    // element so the element keeps its counter.
    const unsigned __int128 wide =
        (unsigned __int128)mix64(key + (i + 1) * kGolden) * (uint64_t)bound;
    return (int64_t)(wide >> 64);
  });
}

const ph_host_random kRandom = {sizeof(ph_host_random), &fill_normal, &fill_uniform,
                                &fill_integers};

}  // namespace

const ph_host_random* random_service() {
  return &kRandom;
}

uint64_t random_bits(uint64_t seed, uint64_t stream, uint64_t counter) {
  return mix64(sequence_key(seed, stream) + (counter + 1) * kGolden);
}

}  // namespace ph::host
