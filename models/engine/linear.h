// The projections of a layer as single GEMMs over all rows of a batch (OpenBLAS).
// Only the input gradient exists in backward: weights are frozen.
//
// Threading: the engine has one thread pool (parallel.h) and OpenBLAS runs
// single-threaded inside it. A large GEMM is split by output columns, one slice per
// thread, so each weight matrix streams through the cores once and no second thread
// pool (OpenBLAS's) spins against the pool's element-wise loops.
#pragma once

#include "models/engine/model.h"

namespace ph {

// C[M, N] = alpha · op(A)[M, K] · op(B)[K, N] + beta · C, row-major (cblas_sgemm's
// arguments), split over the engine's threads by columns of C when large enough and
// not already inside a parallel region. M == 1 runs as a matrix-vector product (decoding:
// a GEMM would copy the whole weight matrix into its packing buffer for one row).
// Deterministic for a given thread count.
void gemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A, int lda,
          const float* B, int ldb, float beta, float* C, int ldc);

// y[rows, lin.out] (= or +=, per `accumulate`) x[rows, lin.in] · Wᵀ + b. Leading
// dimensions are row strides.
void linear_forward(const Linear& lin, int rows, const float* x, int ldx, float* y, int ldy,
                    bool accumulate = false);

// dx[rows, lin.in] (= or +=, per `accumulate`) dy[rows, lin.out] · W.
void linear_backward_input(const Linear& lin, int rows, const float* dy, int lddy, float* dx,
                           int lddx, bool accumulate);

}  // namespace ph
