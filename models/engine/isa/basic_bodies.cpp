#include "models/engine/isa/kernel_bodies.h"

namespace ph {
namespace PH_ISA {

void scale_floats(long n, float scale, const float* x, float* y) {
  for (long i = 0; i < n; ++i) y[i] = x[i] * scale;
}

}  // namespace PH_ISA
}  // namespace ph
