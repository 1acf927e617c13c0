// LayerNorm / RMSNorm rows, forward and backward.
#include "models/engine/isa/kernel_bodies.h"

#include <cmath>

namespace ph {
namespace PH_ISA {

void norm_forward_rows(const float* w, const float* b, float eps, long rows, int width,
                       const float* x, float* y, float* mean, float* rstd) {
  for (long r = 0; r < rows; ++r) {
    const float* xr = x + (size_t)r * width;
    float* yr = y + (size_t)r * width;
    double mu = 0.0;
    if (b) {
#pragma omp simd reduction(+ : mu)
      for (int i = 0; i < width; ++i) mu += xr[i];
      mu /= width;
    }
    double var = 0.0;
#pragma omp simd reduction(+ : var)
    for (int i = 0; i < width; ++i) var += (xr[i] - mu) * (xr[i] - mu);
    const float s = (float)(1.0 / sqrt(var / width + eps));
    if (mean) mean[r] = (float)mu;
    rstd[r] = s;
    const float m = (float)mu;
    if (b) {
      for (int i = 0; i < width; ++i) yr[i] = (xr[i] - m) * s * w[i] + b[i];
    } else {
      for (int i = 0; i < width; ++i) yr[i] = xr[i] * s * w[i];
    }
  }
}

// With xhat = (x - mean) * rstd and g = w ⊙ dy:
//   RMSNorm:   dx = rstd * (g - xhat * mean(g ⊙ xhat))
//   LayerNorm: dx = rstd * (g - mean(g) - xhat * mean(g ⊙ xhat))
void norm_backward_rows(const float* w, const float* b, long rows, int width, const float* x,
                        const float* mean, const float* rstd, const float* dy, float* dx,
                        bool accumulate) {
  for (long r = 0; r < rows; ++r) {
    const float* xr = x + (size_t)r * width;
    const float* dyr = dy + (size_t)r * width;
    float* dxr = dx + (size_t)r * width;
    const float m = b ? mean[r] : 0.0f;
    const float s = rstd[r];
    double sum_g = 0.0, sum_gx = 0.0;
#pragma omp simd reduction(+ : sum_g, sum_gx)
    for (int i = 0; i < width; ++i) {
      const float g = w[i] * dyr[i];
      sum_g += g;
      sum_gx += g * (xr[i] - m) * s;
    }
    const float mean_g = b ? (float)(sum_g / width) : 0.0f;
    const float mean_gx = (float)(sum_gx / width);
    if (accumulate) {
      for (int i = 0; i < width; ++i)
        dxr[i] += s * (w[i] * dyr[i] - mean_g - (xr[i] - m) * s * mean_gx);
    } else {
      for (int i = 0; i < width; ++i)
        dxr[i] = s * (w[i] * dyr[i] - mean_g - (xr[i] - m) * s * mean_gx);
    }
  }
}

}  // namespace PH_ISA
}  // namespace ph
