// Exponentials and softmax rows, and the small row loops of attention (attention.cpp).
#include "models/engine/isa/kernel_bodies.h"

#include <cmath>

#include "models/engine/isa/exp_math.h"

namespace ph {
namespace PH_ISA {

void exp_shifted_row(int n, float shift, float* row) {
#pragma omp simd
  for (int j = 0; j < n; ++j) row[j] = exp_inline(row[j] - shift);
}

float softmax_row(int n, float* row) {
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
  return max + (float)log(sum);
}

void softmax_backward_row(int n, const float* p, float delta, float* d) {
#pragma omp simd
  for (int j = 0; j < n; ++j) d[j] = p[j] * (d[j] - delta);
}

float dot_row(int n, const float* a, const float* b) {
  double acc = 0.0;
#pragma omp simd reduction(+ : acc)
  for (int i = 0; i < n; ++i) acc += (double)a[i] * b[i];
  return (float)acc;
}

void add_span(long n, const float* src, float* dst) {
#pragma omp simd
  for (long i = 0; i < n; ++i) dst[i] += src[i];
}

}  // namespace PH_ISA
}  // namespace ph
