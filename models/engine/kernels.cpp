#include "models/engine/kernels.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "models/engine/parallel.h"

// The clamps in exp_inline are float comparisons; with -ftrapping-math (GCC's default)
// GCC will not turn them into vector selects, and the exponential loops stay scalar
// libm-speed code. Nothing here relies on floating-point exceptions.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math")
#endif

namespace ph {

namespace {

// Cephes' expf: e^x = 2^n e^r with n = round(x / ln 2), |r| <= ln2 / 2, e^r by a degree-6
// polynomial, 2^n put straight into the exponent bits. Branch-free, so loops over it
// vectorise. Max error ~1 ulp against std::exp (checked on a dense grid of [-87, 88]).
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
  std::memcpy(&ti, &t, 4);
  std::memcpy(&si, &shifter, 4);
  const int32_t bits = (ti - si + 127) * (1 << 23);  // n + 127 in the exponent field
  float scale;
  std::memcpy(&scale, &bits, 4);
  return p * scale;
}

// tanh(u) = 1 - 2 / (e^{2u} + 1): saturates cleanly to ±1 through the clamped exp.
__attribute__((always_inline)) inline float tanh_inline(float u) {
  return 1.0f - 2.0f / (exp_inline(2.0f * u) + 1.0f);
}

}  // namespace

// ---------------------------------------------------------------- exponentials

float exp_approx(float x) {
  return exp_inline(x);
}

void exp_shifted(int n, float shift, float* row) {
#pragma omp simd
  for (int j = 0; j < n; ++j) row[j] = exp_inline(row[j] - shift);
}

float softmax_inplace(int n, float* row) {
  float max = row[0];
#pragma omp simd reduction(max : max)
  for (int j = 0; j < n; ++j) max = row[j] > max ? row[j] : max;
  double sum = 0.0;  // up to a vocabulary of terms: accumulate in double
#pragma omp simd reduction(+ : sum)
  for (int j = 0; j < n; ++j) {
    row[j] = exp_inline(row[j] - max);
    sum += row[j];
  }
  const float inv = (float)(1.0 / sum);
#pragma omp simd
  for (int j = 0; j < n; ++j) row[j] *= inv;
  return max + (float)std::log(sum);
}

// ---------------------------------------------------------------- normalisation

void norm_forward(const Norm& norm, float eps, int rows, int width, const float* x, float* y,
                  float* mean, float* rstd) {
  parallel_for(rows, width, [&](long r0, long r1) {
    for (long r = r0; r < r1; ++r) {
      const float* xr = x + (size_t)r * width;
      float* yr = y + (size_t)r * width;
      double mu = 0.0;
      if (norm.b) {
#pragma omp simd reduction(+ : mu)
        for (int i = 0; i < width; ++i) mu += xr[i];
        mu /= width;
      }
      double var = 0.0;
#pragma omp simd reduction(+ : var)
      for (int i = 0; i < width; ++i) var += (xr[i] - mu) * (xr[i] - mu);
      const float s = (float)(1.0 / std::sqrt(var / width + eps));
      if (mean) mean[r] = (float)mu;
      rstd[r] = s;
      const float m = (float)mu;
      if (norm.b) {
        for (int i = 0; i < width; ++i) yr[i] = (xr[i] - m) * s * norm.w[i] + norm.b[i];
      } else {
        for (int i = 0; i < width; ++i) yr[i] = xr[i] * s * norm.w[i];
      }
    }
  });
}

// With xhat = (x - mean) * rstd and g = w ⊙ dy:
//   RMSNorm:   dx = rstd * (g - xhat * mean(g ⊙ xhat))
//   LayerNorm: dx = rstd * (g - mean(g) - xhat * mean(g ⊙ xhat))
void norm_backward(const Norm& norm, int rows, int width, const float* x, const float* mean,
                   const float* rstd, const float* dy, float* dx, bool accumulate) {
  parallel_for(rows, width, [&](long r0, long r1) {
    for (long r = r0; r < r1; ++r) {
      const float* xr = x + (size_t)r * width;
      const float* dyr = dy + (size_t)r * width;
      float* dxr = dx + (size_t)r * width;
      const float m = norm.b ? mean[r] : 0.0f;
      const float s = rstd[r];
      double sum_g = 0.0, sum_gx = 0.0;
#pragma omp simd reduction(+ : sum_g, sum_gx)
      for (int i = 0; i < width; ++i) {
        const float g = norm.w[i] * dyr[i];
        sum_g += g;
        sum_gx += g * (xr[i] - m) * s;
      }
      const float mean_g = norm.b ? (float)(sum_g / width) : 0.0f;
      const float mean_gx = (float)(sum_gx / width);
      if (accumulate) {
        for (int i = 0; i < width; ++i)
          dxr[i] += s * (norm.w[i] * dyr[i] - mean_g - (xr[i] - m) * s * mean_gx);
      } else {
        for (int i = 0; i < width; ++i)
          dxr[i] = s * (norm.w[i] * dyr[i] - mean_g - (xr[i] - m) * s * mean_gx);
      }
    }
  });
}

// ---------------------------------------------------------------- rotary embedding

void RopeTable::ensure(int positions, int dim, float theta) {
  const size_t half = dim / 2;
  if (dim == head_dim && cos.size() >= (size_t)positions * half) return;
  head_dim = dim;
  cos.resize((size_t)positions * half);
  sin.resize((size_t)positions * half);
  for (int p = 0; p < positions; ++p) {
    for (size_t i = 0; i < half; ++i) {
      const double inv = 1.0 / std::pow((double)theta, (2.0 * i) / dim);
      const double angle = p * inv;
      cos[(size_t)p * half + i] = (float)std::cos(angle);
      sin[(size_t)p * half + i] = (float)std::sin(angle);
    }
  }
}

// rotate_half: (x1, x2) -> (x1 c - x2 s, x2 c + x1 s) on the pairs (i, i + head_dim/2).
// The inverse is the transpose: (y1 c + y2 s, y2 c - y1 s).
void rope_apply(const RopeTable& table, int rows, const int* positions, int heads, float* x, int ld,
                bool inverse) {
  const int hd = table.head_dim, half = hd / 2;
  const float sign = inverse ? -1.0f : 1.0f;
  parallel_for(rows, (long)heads * hd, [&](long r0, long r1) {
    for (long r = r0; r < r1; ++r) {
      const float* c = table.cos.data() + (size_t)positions[r] * half;
      const float* s = table.sin.data() + (size_t)positions[r] * half;
      for (int h = 0; h < heads; ++h) {
        float* v = x + (size_t)r * ld + (size_t)h * hd;
#pragma omp simd
        for (int i = 0; i < half; ++i) {
          const float x1 = v[i], x2 = v[i + half];
          v[i] = x1 * c[i] - sign * x2 * s[i];
          v[i + half] = x2 * c[i] + sign * x1 * s[i];
        }
      }
    }
  });
}

// ---------------------------------------------------------------- activations

namespace {
constexpr float kGeluScale = 0.7978845608028654f;  // sqrt(2 / pi)
constexpr float kGeluCubic = 0.044715f;
}  // namespace

void gelu_forward(long n, const float* x, float* y) {
  parallel_for(n, 1, [&](long i0, long i1) {
#pragma omp simd
    for (long i = i0; i < i1; ++i) {
      const float v = x[i];
      y[i] = 0.5f * v * (1.0f + tanh_inline(kGeluScale * (v + kGeluCubic * v * v * v)));
    }
  });
}

void gelu_backward(long n, const float* x, const float* dy, float* dx) {
  parallel_for(n, 1, [&](long i0, long i1) {
#pragma omp simd
    for (long i = i0; i < i1; ++i) {
      const float v = x[i];
      const float t = tanh_inline(kGeluScale * (v + kGeluCubic * v * v * v));
      const float du = kGeluScale * (1.0f + 3.0f * kGeluCubic * v * v);
      dx[i] = dy[i] * (0.5f * (1.0f + t) + 0.5f * v * (1.0f - t * t) * du);
    }
  });
}

void swiglu_forward(int rows, int ffn, const float* gate_up, float* y) {
  parallel_for(rows, ffn, [&](long r0, long r1) {
    for (long r = r0; r < r1; ++r) {
      const float* g = gate_up + (size_t)r * 2 * ffn;
      const float* u = g + ffn;
      float* yr = y + (size_t)r * ffn;
#pragma omp simd
      for (int i = 0; i < ffn; ++i) yr[i] = g[i] / (1.0f + exp_inline(-g[i])) * u[i];
    }
  });
}

// y = silu(g) u:  dg = dy u σ(g)(1 + g(1 - σ(g))),  du = dy silu(g)
void swiglu_backward(int rows, int ffn, const float* gate_up, const float* dy, float* dgate_up) {
  parallel_for(rows, ffn, [&](long r0, long r1) {
    for (long r = r0; r < r1; ++r) {
      const float* g = gate_up + (size_t)r * 2 * ffn;
      const float* u = g + ffn;
      const float* dyr = dy + (size_t)r * ffn;
      float* dg = dgate_up + (size_t)r * 2 * ffn;
      float* du = dg + ffn;
#pragma omp simd
      for (int i = 0; i < ffn; ++i) {
        const float sig = 1.0f / (1.0f + exp_inline(-g[i]));
        du[i] = dyr[i] * g[i] * sig;
        dg[i] = dyr[i] * u[i] * sig * (1.0f + g[i] * (1.0f - sig));
      }
    }
  });
}

// Any activation f, plain (y = f(x)) or gated over fused rows [gate | up] (y = f(gate) ·
// up). Each activation is a value and a derivative, dispatched once outside the loops so
// that the loops vectorise; silu and tanh-GELU take the fast paths above.

namespace {

struct GeluErf {
  static float value(float x) { return 0.5f * x * (1.0f + std::erf(x * 0.70710678118654752f)); }
  static float slope(float x) {
    return 0.5f * (1.0f + std::erf(x * 0.70710678118654752f)) +
           x * 0.3989422804014327f * std::exp(-0.5f * x * x);
  }
};
struct GeluTanh {
  static float value(float x) {
    return 0.5f * x * (1.0f + tanh_inline(kGeluScale * (x + kGeluCubic * x * x * x)));
  }
  static float slope(float x) {
    const float t = tanh_inline(kGeluScale * (x + kGeluCubic * x * x * x));
    return 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * kGeluScale * (1.0f + 3.0f * kGeluCubic * x * x);
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

template <class F>
void gated_forward_as(int rows, int ffn, const float* gate_up, float* y) {
  parallel_for(rows, ffn, [&](long r0, long r1) {
    for (long r = r0; r < r1; ++r) {
      const float* g = gate_up + (size_t)r * 2 * ffn;
      const float* u = g + ffn;
      float* yr = y + (size_t)r * ffn;
#pragma omp simd
      for (int i = 0; i < ffn; ++i) yr[i] = F::value(g[i]) * u[i];
    }
  });
}

template <class F>
void gated_backward_as(int rows, int ffn, const float* gate_up, const float* dy, float* dgate_up) {
  parallel_for(rows, ffn, [&](long r0, long r1) {
    for (long r = r0; r < r1; ++r) {
      const float* g = gate_up + (size_t)r * 2 * ffn;
      const float* u = g + ffn;
      const float* dyr = dy + (size_t)r * ffn;
      float* dg = dgate_up + (size_t)r * 2 * ffn;
      float* du = dg + ffn;
#pragma omp simd
      for (int i = 0; i < ffn; ++i) {
        du[i] = dyr[i] * F::value(g[i]);
        dg[i] = dyr[i] * u[i] * F::slope(g[i]);
      }
    }
  });
}

template <class F>
void plain_forward_as(long n, const float* x, float* y) {
  parallel_for(n, 1, [&](long i0, long i1) {
#pragma omp simd
    for (long i = i0; i < i1; ++i) y[i] = F::value(x[i]);
  });
}

template <class F>
void plain_backward_as(long n, const float* x, const float* dy, float* dx) {
  parallel_for(n, 1, [&](long i0, long i1) {
#pragma omp simd
    for (long i = i0; i < i1; ++i) dx[i] = dy[i] * F::slope(x[i]);
  });
}

}  // namespace

void activation_forward(Activation act, long n, const float* x, float* y) {
  switch (act) {
    case Activation::kGeluTanh: return gelu_forward(n, x, y);
    case Activation::kGeluErf: return plain_forward_as<GeluErf>(n, x, y);
    case Activation::kRelu: return plain_forward_as<Relu>(n, x, y);
    case Activation::kSilu: return plain_forward_as<Silu>(n, x, y);
  }
}

void activation_backward(Activation act, long n, const float* x, const float* dy, float* dx) {
  switch (act) {
    case Activation::kGeluTanh: return gelu_backward(n, x, dy, dx);
    case Activation::kGeluErf: return plain_backward_as<GeluErf>(n, x, dy, dx);
    case Activation::kRelu: return plain_backward_as<Relu>(n, x, dy, dx);
    case Activation::kSilu: return plain_backward_as<Silu>(n, x, dy, dx);
  }
}

void gated_forward(Activation act, int rows, int ffn, const float* gate_up, float* y) {
  switch (act) {
    case Activation::kSilu: return swiglu_forward(rows, ffn, gate_up, y);
    case Activation::kGeluTanh: return gated_forward_as<GeluTanh>(rows, ffn, gate_up, y);
    case Activation::kGeluErf: return gated_forward_as<GeluErf>(rows, ffn, gate_up, y);
    case Activation::kRelu: return gated_forward_as<Relu>(rows, ffn, gate_up, y);
  }
}

void gated_backward(Activation act, int rows, int ffn, const float* gate_up, const float* dy,
                    float* dgate_up) {
  switch (act) {
    case Activation::kSilu: return swiglu_backward(rows, ffn, gate_up, dy, dgate_up);
    case Activation::kGeluTanh:
      return gated_backward_as<GeluTanh>(rows, ffn, gate_up, dy, dgate_up);
    case Activation::kGeluErf: return gated_backward_as<GeluErf>(rows, ffn, gate_up, dy, dgate_up);
    case Activation::kRelu: return gated_backward_as<Relu>(rows, ffn, gate_up, dy, dgate_up);
  }
}

// ---------------------------------------------------------------- copies

void copy_floats(long n, const float* src, float* dst) {
  parallel_for(n, 1, [&](long i0, long i1) { std::copy(src + i0, src + i1, dst + i0); });
}

void add_floats(long n, const float* src, float* dst) {
  parallel_for(n, 1, [&](long i0, long i1) {
#pragma omp simd
    for (long i = i0; i < i1; ++i) dst[i] += src[i];
  });
}

}  // namespace ph
