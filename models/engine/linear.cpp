#include "models/engine/linear.h"

#include <cblas.h>

#include <algorithm>
#include <mutex>

#include "models/engine/parallel.h"

namespace ph {

// OpenBLAS must not start its own threads inside the pool's (see linear.h).
void blas_single_threaded() {
  static std::once_flag once;
  std::call_once(once, [] { openblas_set_num_threads(1); });
}

namespace {

// One thread's share: C[:, n0:n1] from B's matching rows (trans_b) or columns.
void gemm_slice(bool trans_a, bool trans_b, int M, int n0, int n1, int K, float alpha,
                const float* A, int lda, const float* B, int ldb, float beta, float* C, int ldc) {
  const int N = n1 - n0;
  if (N <= 0) return;
  const float* Bs = trans_b ? B + (size_t)n0 * ldb : B + n0;
  float* Cs = C + n0;
  if (M == 1) {
    // One output row: C = op(B)ᵀ a, with a = A's row (or column, when transposed).
    const int inc_a = trans_a ? lda : 1;
    // With beta = 0 BLAS may still read C (0 · NaN = NaN): our buffers start uninitialised.
    if (beta == 0.0f) std::fill(Cs, Cs + N, 0.0f);
    if (trans_b)  // B is [N, K]: C = B · a
      cblas_sgemv(CblasRowMajor, CblasNoTrans, N, K, alpha, Bs, ldb, A, inc_a, beta, Cs, 1);
    else  // B is [K, N]: C = Bᵀ · a
      cblas_sgemv(CblasRowMajor, CblasTrans, K, N, alpha, Bs, ldb, A, inc_a, beta, Cs, 1);
    return;
  }
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
              trans_b ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda, Bs, ldb, beta, Cs, ldc);
}

}  // namespace

void gemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A, int lda,
          const float* B, int ldb, float beta, float* C, int ldc) {
  if (M <= 0 || N <= 0) return;
  blas_single_threaded();
  // Below ~256k multiply-adds waking the pool costs more than it saves (and far more on
  // a loaded machine, where the other thread may be descheduled); the slices are kept
  // a multiple of 16 columns (the SGEMM micro-kernels' width) and at least 64 wide.
  const long work = (long)M * N * K;
  const int parts = work < (1L << 18) ? 1 : std::max(1, std::min(num_threads(), N / 64));
  if (parts == 1) {
    gemm_slice(trans_a, trans_b, M, 0, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
  const int per = ((N + parts - 1) / parts + 15) / 16 * 16;
  parallel_run([&](int p) {
    if (p < parts)
      gemm_slice(trans_a, trans_b, M, std::min(N, p * per), std::min(N, (p + 1) * per), K, alpha, A,
                 lda, B, ldb, beta, C, ldc);
  });
}

void linear_forward(const Linear& lin, int rows, const float* x, int ldx, float* y, int ldy,
                    bool accumulate) {
  if (rows == 0) return;
  // [out, in] weights are used transposed; Conv1D's [in, out] as they are.
  gemm(false, !lin.in_major, rows, lin.out, lin.in, 1.0f, x, ldx, lin.w,
       lin.in_major ? lin.out : lin.in, accumulate ? 1.0f : 0.0f, y, ldy);
  if (lin.b) {
    parallel_for(rows, lin.out, [&](long r0, long r1) {
      for (long r = r0; r < r1; ++r) {
        float* yr = y + (size_t)r * ldy;
        for (int j = 0; j < lin.out; ++j) yr[j] += lin.b[j];
      }
    });
  }
}

void linear_backward_input(const Linear& lin, int rows, const float* dy, int lddy, float* dx,
                           int lddx, bool accumulate) {
  if (rows == 0) return;
  gemm(false, lin.in_major, rows, lin.in, lin.out, 1.0f, dy, lddy, lin.w,
       lin.in_major ? lin.out : lin.in, accumulate ? 1.0f : 0.0f, dx, lddx);
}

}  // namespace ph
