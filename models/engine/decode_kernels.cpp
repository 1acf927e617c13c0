#include "models/engine/decode_kernels.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <vector>

#include "models/engine/isa/kernel_table.h"
#include "models/engine/parallel.h"

namespace ph {

namespace {

// Below this many multiply-adds waking the pool costs more than it saves.
constexpr long kThreadedWork = 1L << 18;
// Below this many output columns a product is not split (the slices are whole multiples
// of 64 columns, the widest tile; the result does not depend on the slicing).
constexpr int kMinSplitColumns = 256;

// One slice of y's columns on the calling thread; in-major products keep their
// accumulators in a buffer of the thread.
void product_slice(const KernelTable& k, const Linear& lin, int rows, int n0, int n1,
                   const float* x, int ldx, float* y, int ldy, bool accumulate) {
  if (!lin.in_major) {
    k.decode_product_out_major(rows, lin.in, n0, n1, x, ldx, lin.w, lin.in, lin.b, y, ldy,
                               accumulate);
    return;
  }
  thread_local std::vector<float> scratch;
  // room for the accumulators (few rows: their stream's; many: a pass over the columns, at
  // least 16 of them) and the kernel's 1024 floats for placing them
  const size_t R = rows, stream = 2048 * R,
               pass = std::max<size_t>(16 * R, std::min<size_t>(size_t(1) << 18, R * (n1 - n0)));
  const size_t want = 1024 + (rows <= 4 ? std::max(stream, pass) : pass);
  if (scratch.size() < want) scratch.resize(want);
  k.decode_product_in_major(rows, lin.in, n0, n1, x, ldx, lin.w, lin.out, lin.b, y, ldy, accumulate,
                            scratch.data(), (long)scratch.size());
}

}  // namespace

double decode_linear(const Linear& lin, int rows, const float* x, int ldx, float* y, int ldy,
                     bool accumulate) {
  if (rows <= 0 || lin.out <= 0) return 0.0;
  const KernelTable& k = kernels();  // on the calling thread (it may throw: PROMPTHOST_ISA)
  const int N = lin.out;
  const long work = (long)rows * lin.in * N;
  const int threads = num_threads();
  if (work < kThreadedWork || threads == 1 || N < kMinSplitColumns) {
    product_slice(k, lin, rows, 0, N, x, ldx, y, ldy, accumulate);
    return 2.0 * work;
  }
  // One slice of whole row pieces per thread, each thread its own: W streams from memory
  // in long contiguous runs (as a BLAS sgemv reads it) and each thread's prefetching runs
  // ahead through its whole slice.
  const int per = ((N + threads - 1) / threads + 63) / 64 * 64;
  parallel_run([&](int t) {
    const int n0 = std::min(N, t * per), n1 = std::min(N, (t + 1) * per);
    if (n0 < n1) product_slice(k, lin, rows, n0, n1, x, ldx, y, ldy, accumulate);
  });
  return 2.0 * work;
}

double decode_attention(const AttentionShape& shape, const std::vector<DecodeAttentionRow>& rows) {
  const int H = shape.n_heads, hd = shape.head_dim, group = shape.n_heads / shape.n_kv_heads;
  const float scale = shape.scale > 0.0f ? shape.scale : 1.0f / std::sqrt((float)hd);
  long keys = 0;
  int widest = 0;
  for (const auto& r : rows) {
    keys += r.n;
    widest = std::max(widest, r.n);
  }
  const long work = keys * H * hd;
  const int units = (int)rows.size() * H;
  const auto body = kernels().decode_attention_row;
  // Units (row, head) are handed out dynamically: a unit's result does not depend on the
  // thread that computes it.
  std::atomic<int> next{0};
  auto run = [&](int) {
    std::vector<float> scores(widest);
    for (int u; (u = next.fetch_add(1, std::memory_order_relaxed)) < units;) {
      const DecodeAttentionRow& r = rows[u / H];
      const int h = u % H, g = h / group;
      const float* bias = nullptr;
      if (shape.bias)  // key j is at distance j - (n - 1) from the query
        bias = shape.bias->table + h * shape.bias->head_stride + shape.bias->center - (r.n - 1);
      body(r.n, hd, r.q + (size_t)h * hd, r.keys + g * r.head_stride, r.values + g * r.head_stride,
           hd, scale, bias, scores.data(), r.out + (size_t)h * hd);
    }
  };
  if (work < kThreadedWork || units < 2)
    run(0);
  else
    parallel_run(run);
  return 4.0 * work;
}

}  // namespace ph
