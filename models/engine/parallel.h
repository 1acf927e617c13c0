// The engine's threads: one small pool does everything (GEMM slices, attention units,
// element-wise loops), and OpenBLAS runs single-threaded inside it (see linear.h).
//
// Why not OpenMP: libgomp's threads spin at every barrier, and on a shared machine
// (more runnable threads than cores) a spinning thread holds the core its partner
// needs: batch-1 decoding, ~60 barriers a token, ran 8x slower than single-threaded.
// This pool spins briefly and then sleeps, so it degrades gracefully under load.
//
// Work is split statically by the thread count (thread t of T always gets the same
// slice), so results are bit-identical for a given thread count. A call made from
// inside a pool task runs its slices one after the other on the calling thread: same
// slices, same results.
#pragma once

#include <functional>

namespace ph {

// Threads of the pool (the calling thread counts as one); see set_num_threads.
int num_threads();

// Runs task(t) for t = 0 .. num_threads()-1, one per thread, and waits for all of them.
void parallel_run(const std::function<void(int thread)>& task);

// Below this much work (roughly, in floating-point operations or elements touched),
// waking the pool costs more than it saves.
constexpr long kParallelWork = 1L << 15;

// fn(begin, end) over [0, n) cut into num_threads() contiguous slices, or one call over
// all of it when n * cost_per_item < kParallelWork.
template <class F>
void parallel_for(long n, long cost_per_item, F fn) {
  const int T = num_threads();
  if (T == 1 || n < 2 || n * cost_per_item < kParallelWork) {
    if (n > 0) fn(0L, n);
    return;
  }
  const long parts = n < T ? n : T;
  parallel_run([&](int t) {
    if (t < parts) fn(n * t / parts, n * (t + 1) / parts);
  });
}

}  // namespace ph
