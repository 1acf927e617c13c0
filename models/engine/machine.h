// Rates of this machine, measured in-process with the engine's own threading, so a
// benchmark can report achieved GFLOP/s and bandwidth as a fraction of what the
// machine gives right now (on a shared machine, both move together).
#pragma once

#include <cstddef>

namespace ph {

// GFLOP/s of the engine's GEMM (OpenBLAS SGEMM slices over the engine's threads) on a
// projection-sized problem C[m, n] = A[m, k] · Bᵀ, best of a few runs.
double measure_sgemm_gflops(int m = 1024, int n = 2304, int k = 768);

// GB/s of reading a buffer much larger than the caches with the engine's threads (what
// batch-1 decoding does with the weights), best of a few passes.
double measure_read_gbps(size_t bytes = size_t(256) << 20);

}  // namespace ph
