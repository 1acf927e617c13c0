#include "models/engine/kernels.h"

#include <cmath>

namespace ph {

// ---------------------------------------------------------------- normalisation

void norm_forward(const Norm& norm, float eps, int rows, int width, const float* x, float* y,
                  float* mean, float* rstd) {
  for (int r = 0; r < rows; ++r) {
    const float* xr = x + (size_t)r * width;
    float* yr = y + (size_t)r * width;
    double mu = 0.0;
    if (norm.b) {
      for (int i = 0; i < width; ++i) mu += xr[i];
      mu /= width;
    }
    double var = 0.0;
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
}

// With xhat = (x - mean) * rstd and g = w ⊙ dy:
//   RMSNorm:   dx = rstd * (g - xhat * mean(g ⊙ xhat))
//   LayerNorm: dx = rstd * (g - mean(g) - xhat * mean(g ⊙ xhat))
void norm_backward(const Norm& norm, int rows, int width, const float* x, const float* mean,
                   const float* rstd, const float* dy, float* dx, bool accumulate) {
  for (int r = 0; r < rows; ++r) {
    const float* xr = x + (size_t)r * width;
    const float* dyr = dy + (size_t)r * width;
    float* dxr = dx + (size_t)r * width;
    const float m = norm.b ? mean[r] : 0.0f;
    const float s = rstd[r];
    double sum_g = 0.0, sum_gx = 0.0;
    for (int i = 0; i < width; ++i) {
      const float g = norm.w[i] * dyr[i];
      sum_g += g;
      sum_gx += g * (xr[i] - m) * s;
    }
    const float mean_g = norm.b ? (float)(sum_g / width) : 0.0f;
    const float mean_gx = (float)(sum_gx / width);
    for (int i = 0; i < width; ++i) {
      const float xhat = (xr[i] - m) * s;
      const float d = s * (norm.w[i] * dyr[i] - mean_g - xhat * mean_gx);
      dxr[i] = accumulate ? dxr[i] + d : d;
    }
  }
}

// ---------------------------------------------------------------- rotary embedding

void RopeTable::ensure(int positions, int dim, float theta) {
  const int half = dim / 2;
  if (dim == head_dim && (int)cos.size() >= positions * half) return;
  head_dim = dim;
  cos.resize((size_t)positions * half);
  sin.resize((size_t)positions * half);
  for (int p = 0; p < positions; ++p) {
    for (int i = 0; i < half; ++i) {
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
  for (int r = 0; r < rows; ++r) {
    const float* c = table.cos.data() + (size_t)positions[r] * half;
    const float* s = table.sin.data() + (size_t)positions[r] * half;
    for (int h = 0; h < heads; ++h) {
      float* v = x + (size_t)r * ld + (size_t)h * hd;
      for (int i = 0; i < half; ++i) {
        const float x1 = v[i], x2 = v[i + half];
        v[i] = x1 * c[i] - sign * x2 * s[i];
        v[i + half] = x2 * c[i] + sign * x1 * s[i];
      }
    }
  }
}

// ---------------------------------------------------------------- activations

namespace {
constexpr float kGeluScale = 0.7978845608028654f;  // sqrt(2 / pi)
constexpr float kGeluCubic = 0.044715f;
}  // namespace

void gelu_forward(int n, const float* x, float* y) {
  for (int i = 0; i < n; ++i) {
    const float v = x[i];
    y[i] = 0.5f * v * (1.0f + std::tanh(kGeluScale * (v + kGeluCubic * v * v * v)));
  }
}

void gelu_backward(int n, const float* x, const float* dy, float* dx) {
  for (int i = 0; i < n; ++i) {
    const float v = x[i];
    const float t = std::tanh(kGeluScale * (v + kGeluCubic * v * v * v));
    const float du = kGeluScale * (1.0f + 3.0f * kGeluCubic * v * v);
    dx[i] = dy[i] * (0.5f * (1.0f + t) + 0.5f * v * (1.0f - t * t) * du);
  }
}

void swiglu_forward(int rows, int ffn, const float* gate_up, float* y) {
  for (int r = 0; r < rows; ++r) {
    const float* g = gate_up + (size_t)r * 2 * ffn;
    const float* u = g + ffn;
    float* yr = y + (size_t)r * ffn;
    for (int i = 0; i < ffn; ++i) yr[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
  }
}

// y = silu(g) u:  dg = dy u σ(g)(1 + g(1 - σ(g))),  du = dy silu(g)
void swiglu_backward(int rows, int ffn, const float* gate_up, const float* dy, float* dgate_up) {
  for (int r = 0; r < rows; ++r) {
    const float* g = gate_up + (size_t)r * 2 * ffn;
    const float* u = g + ffn;
    const float* dyr = dy + (size_t)r * ffn;
    float* dg = dgate_up + (size_t)r * 2 * ffn;
    float* du = dg + ffn;
    for (int i = 0; i < ffn; ++i) {
      const float sig = 1.0f / (1.0f + std::exp(-g[i]));
      du[i] = dyr[i] * g[i] * sig;
      dg[i] = dyr[i] * u[i] * sig * (1.0f + g[i] * (1.0f - sig));
    }
  }
}

}  // namespace ph
