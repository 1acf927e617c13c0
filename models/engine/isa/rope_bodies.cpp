// The rotary embedding of query and key rows, forward and inverse.
#include "models/engine/isa/kernel_bodies.h"

#include <cstddef>

namespace ph {
namespace PH_ISA {

// rotate_half: (x1, x2) -> (x1 c - x2 s, x2 c + x1 s) on the pairs (i, i + head_dim/2).
// The inverse is the transpose: (y1 c + y2 s, y2 c - y1 s).
void rope_rows(const float* cos, const float* sin, int head_dim, long rows, const int* positions,
               int heads, float* x, long ld, float sign) {
  const int half = head_dim / 2;
  for (long r = 0; r < rows; ++r) {
    const float* c = cos + (size_t)positions[r] * half;
    const float* s = sin + (size_t)positions[r] * half;
    for (int h = 0; h < heads; ++h) {
      float* v = x + (size_t)r * ld + (size_t)h * head_dim;
#pragma omp simd
      for (int i = 0; i < half; ++i) {
        const float x1 = v[i], x2 = v[i + half];
        v[i] = x1 * c[i] - sign * x2 * s[i];
        v[i + half] = x2 * c[i] + sign * x1 * s[i];
      }
    }
  }
}

}  // namespace PH_ISA
}  // namespace ph
