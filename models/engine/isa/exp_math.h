// The bodies' scalar math, inlined into their loops so that those vectorise: the
// polynomial exponential, tanh through it, and the activations as value and slope.
// Internal to engine/isa/: include it after kernel_bodies.h, in a body file only. Every
// function here is in an anonymous namespace inside ph::PH_ISA (internal linkage), so no
// level's copy can stand in for another's (the ODR trap of kernel_bodies.h).
#pragma once

#include <cmath>
#include <cstdint>

namespace ph {
namespace PH_ISA {
namespace {

// Cephes' expf: e^x = 2^n e^r with n = round(x / ln 2), |r| <= ln2 / 2, e^r by a degree-6
// polynomial, 2^n put straight into the exponent bits. Branch-free, so loops over it
// vectorise. Max error ~1 ulp against std::exp (checked on a dense grid of [-87, 88]).
// The clamps are float comparisons: these files are built with -fno-trapping-math, else
// GCC would not turn them into vector selects (nothing here relies on FP exceptions).
__attribute__((always_inline)) inline float exp_inline(float x) {
  x = x < -87.3365478515625f ? -87.3365478515625f : x;  // 2^-126: smallest normal result
  x = x > 88.3762626647949f ? 88.3762626647949f : x;    // 2^127.5: largest n is 127
  const float shifter = 12582912.0f;  // 1.5 · 2^23: adding it rounds to an integer
  const float t = x * 1.44269504088896341f + shifter;
  const float n = t - shifter;
  float r = x - n * 0.693359375f;  // ln 2 in two parts, so r is exact
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  int32_t ti, si;
  __builtin_memcpy(&ti, &t, 4);
  __builtin_memcpy(&si, &shifter, 4);
  const int32_t bits = (ti - si + 127) * (1 << 23);  // n + 127 in the exponent field
  float scale;
  __builtin_memcpy(&scale, &bits, 4);
  return p * scale;
}

// tanh(u) = 1 - 2 / (e^{2u} + 1): saturates cleanly to ±1 through the clamped exp.
__attribute__((always_inline)) inline float tanh_inline(float u) {
  return 1.0f - 2.0f / (exp_inline(2.0f * u) + 1.0f);
}

// The activations: value f(x) and slope f'(x).
constexpr float kGeluScale = 0.7978845608028654f;  // sqrt(2 / pi)
constexpr float kGeluCubic = 0.044715f;

struct GeluTanh {  // gpt2's gelu_new
  static float value(float x) {
    return 0.5f * x * (1.0f + tanh_inline(kGeluScale * (x + kGeluCubic * x * x * x)));
  }
  static float slope(float x) {
    const float t = tanh_inline(kGeluScale * (x + kGeluCubic * x * x * x));
    const float du = kGeluScale * (1.0f + 3.0f * kGeluCubic * x * x);
    return 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * du;
  }
};
struct GeluErf {
  static float value(float x) { return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f)); }
  static float slope(float x) {
    return 0.5f * (1.0f + erff(x * 0.70710678118654752f)) +
           x * 0.3989422804014327f * expf(-0.5f * x * x);
  }
};
struct Relu {
  static float value(float x) { return x > 0.0f ? x : 0.0f; }
  static float slope(float x) { return x > 0.0f ? 1.0f : 0.0f; }
};
struct Silu {
  static float value(float x) { return x / (1.0f + exp_inline(-x)); }
  static float slope(float x) {
    const float sig = 1.0f / (1.0f + exp_inline(-x));
    return sig * (1.0f + x * (1.0f - sig));
  }
};

}  // namespace
}  // namespace PH_ISA
}  // namespace ph
