#include "models/engine/linear.h"

#include <cblas.h>

namespace ph {

void linear_forward(const Linear& lin, int rows, const float* x, int ldx, float* y, int ldy) {
  if (rows == 0) return;
  // [out, in] weights are used transposed; Conv1D's [in, out] as they are.
  cblas_sgemm(CblasRowMajor, CblasNoTrans, lin.in_major ? CblasNoTrans : CblasTrans, rows, lin.out,
              lin.in, 1.0f, x, ldx, lin.w, lin.in_major ? lin.out : lin.in, 0.0f, y, ldy);
  if (lin.b) {
    for (int r = 0; r < rows; ++r) {
      float* yr = y + (size_t)r * ldy;
      for (int j = 0; j < lin.out; ++j) yr[j] += lin.b[j];
    }
  }
}

void linear_backward_input(const Linear& lin, int rows, const float* dy, int lddy, float* dx,
                           int lddx, bool accumulate) {
  if (rows == 0) return;
  cblas_sgemm(CblasRowMajor, CblasNoTrans, lin.in_major ? CblasTrans : CblasNoTrans, rows, lin.in,
              lin.out, 1.0f, dy, lddy, lin.w, lin.in_major ? lin.out : lin.in,
              accumulate ? 1.0f : 0.0f, dx, lddx);
}

}  // namespace ph
