#include "models/engine/machine.h"

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <vector>

#include "models/engine/linear.h"
#include "models/engine/parallel.h"

namespace ph {

namespace {
using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}
}  // namespace

double measure_sgemm_gflops(int m, int n, int k) {
  std::vector<float> a((size_t)m * k), b((size_t)n * k), c((size_t)m * n);
  for (size_t i = 0; i < a.size(); ++i) a[i] = (float)((i * 7919) % 1000) * 1e-3f - 0.5f;
  for (size_t i = 0; i < b.size(); ++i) b[i] = (float)((i * 104729) % 1000) * 1e-3f - 0.5f;
  double best = 1e30;
  for (int rep = 0; rep < 11; ++rep) {  // the first run warms up (page faults, packing buffers)
    const auto t0 = Clock::now();
    gemm(false, true, m, n, k, 1.0f, a.data(), k, b.data(), k, 0.0f, c.data(), n);
    if (rep > 0) best = std::min(best, seconds_since(t0));
  }
  return 2.0 * m * n * k / best * 1e-9;
}

double measure_read_gbps(size_t bytes) {
  // 16 independent sums per thread, so the loop is bound by memory, not by add latency.
  constexpr int kLanes = 16;
  const long n = (long)(bytes / sizeof(float)) / kLanes * kLanes;
  std::vector<float> buf(n, 1.0f);
  std::vector<float> sums(num_threads(), 0.0f);
  double best = 1e30;
  for (int rep = 0; rep < 4; ++rep) {  // the first pass warms up
    const auto t0 = Clock::now();
    const long blocks = n / kLanes, T = num_threads();
    parallel_run([&](int t) {
      float acc[kLanes] = {};
      for (long b = blocks * t / T; b < blocks * (t + 1) / T; ++b)
        for (int l = 0; l < kLanes; ++l) acc[l] += buf[b * kLanes + l];
      for (float a : acc) sums[t] += a;
    });
    if (rep > 0) best = std::min(best, seconds_since(t0));
  }
  volatile float keep = sums[0];  // the sums must not be optimised away
  (void)keep;
  return (double)n * sizeof(float) / best * 1e-9;
}

}  // namespace ph
