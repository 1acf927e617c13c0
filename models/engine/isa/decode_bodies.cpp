// The decoding kernels of BatchDecoder (batch_decode.h): products over the few rows of a
// decoding step that read each weight once for all of them, and attention of one query
// row over its own sequence's cache.
//
// Determinism: every output element is summed in an order fixed by the kernel alone:
// the product's element (r, j) by k ascending (in-major) or by lanes of k and then a fixed
// tree (out-major), whatever the number of rows, the tile it falls in, or the columns a
// thread was given. So a row's result never depends on the rest of the batch. (GCC
// vectorises lane by lane and never reassociates without -ffast-math, so a lane of a
// vector tile and the scalar tail compute the same operations.)
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "models/engine/isa/kernel_bodies.h"

#include "models/engine/isa/exp_math.h"

namespace ph {
namespace PH_ISA {

namespace {

// Lanes of a vector register, and the register tiles (what fits the register file: 32
// registers with AVX-512, 16 below it).
#if defined(__AVX512F__)
#define PH_LANES 16
constexpr int kInRows = 6, kInVecs = 4;  // in-major tile: rows x vectors of columns
// out-major 6 x 4: 24 accumulators, 10 loads per 24 multiply-adds (4 x 4 took 8 per 16)
constexpr int kOutRows = 6, kOutCols = 4;  // out-major tile: rows x weight rows
#elif defined(__AVX2__)
#define PH_LANES 8
constexpr int kInRows = 4, kInVecs = 3;
constexpr int kOutRows = 3, kOutCols = 3;
#else
#define PH_LANES 4
constexpr int kInRows = 4, kInVecs = 3;
constexpr int kOutRows = 3, kOutCols = 3;
#endif
constexpr int kLanes = PH_LANES;
constexpr int kVectorsPerLine = kLanes >= 16 ? 1 : 16 / kLanes;  // of a 64-byte cache line

// Vectors of 2..16 floats: unaligned, and allowed to alias the floats they are loaded from.
#define PH_VECTOR(name, n) \
  typedef float name __attribute__((vector_size(n * sizeof(float)), aligned(4), may_alias))
PH_VECTOR(Vec2, 2);
PH_VECTOR(Vec4, 4);
PH_VECTOR(Vec8, 8);
PH_VECTOR(Vec16, 16);
PH_VECTOR(Vec, PH_LANES);
#undef PH_VECTOR

inline Vec load(const float* p) {
  return *reinterpret_cast<const Vec*>(p);
}
inline void store(float* p, Vec v) {
  *reinterpret_cast<Vec*>(p) = v;
}

// The lanes' sum by a fixed tree: lane i + lane i + n/2, and so on down to one.
inline float reduce(Vec2 v) {
  return v[0] + v[1];
}
inline float reduce(Vec4 v) {
  return reduce(__builtin_shufflevector(v, v, 0, 1) + __builtin_shufflevector(v, v, 2, 3));
}
inline float reduce(Vec8 v) {
  return reduce(__builtin_shufflevector(v, v, 0, 1, 2, 3) +
                __builtin_shufflevector(v, v, 4, 5, 6, 7));
}
inline float reduce(Vec16 v) {
  return reduce(__builtin_shufflevector(v, v, 0, 1, 2, 3, 4, 5, 6, 7) +
                __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15));
}

// Fetching W into L2 ahead of use, spread evenly over the row blocks that share a
// block of W (each issues the steps k with k % period == phase), so that memory works
// while they compute. ahead = 0: none.
struct Prefetch {
  int ahead = 0, phase = 0, period = 1;
  bool at(int step) const { return ahead && step % period == phase; }
};

// The end of every output element: sum (+ bias), then (+ the value already in y).
inline float finish(float sum, const float* bias, int j, const float* y, bool accumulate) {
  if (bias) sum += bias[j];
  return accumulate ? *y + sum : sum;
}

// y[j] = finish(sum[j], ...) for j < n, the branches outside the loops (which vectorise).
inline void finish_row(int n, const float* sum, const float* bias, float* y, bool accumulate) {
  if (bias && accumulate)
    for (int j = 0; j < n; ++j) y[j] = y[j] + (sum[j] + bias[j]);
  else if (bias)
    for (int j = 0; j < n; ++j) y[j] = sum[j] + bias[j];
  else if (accumulate)
    for (int j = 0; j < n; ++j) y[j] = y[j] + sum[j];
  else
    for (int j = 0; j < n; ++j) y[j] = sum[j];
}

// ---------------------------------------------------------------- in-major: W [K, N]
// Element (r, j) = Σ_k x[r, k] · w[k, j] with one accumulator, k ascending, whether it is
// a lane of a register tile, of the few-row stream, or a scalar column. Many rows take K
// kBlock rows at a time, the accumulators kept in scratch between blocks (stored and
// reloaded exactly: the blocking does not change the sum): a block of W comes from memory
// once (prefetched while the previous block is computed) and from L2 for the other row
// blocks.
constexpr int kBlock = 64;

// RB rows x VB vectors of columns over kn rows of W from its row 0: acc (row stride
// ldacc) starts at 0 (first) or at its stored value. The same columns `pf.ahead` rows
// further down (the next block) are prefetched: W's rows lie in different pages, which
// the hardware prefetchers do not cross.
template <int RB, int VB>
void in_major_tile(int kn, const float* x, long ldx, const float* w, long ldw, float* acc,
                   long ldacc, bool first, Prefetch pf) {
  Vec a[RB][VB];
  for (int r = 0; r < RB; ++r)
    for (int v = 0; v < VB; ++v) a[r][v] = first ? Vec{} : load(acc + r * ldacc + v * kLanes);
  for (int k = 0; k < kn; ++k) {
    const float* wk = w + k * ldw;
    if (pf.at(k))
      for (int v = 0; v < VB; v += kVectorsPerLine)
        __builtin_prefetch(wk + pf.ahead * ldw + v * kLanes, 0, 2);
    Vec wv[VB];
    for (int v = 0; v < VB; ++v) wv[v] = load(wk + v * kLanes);
    for (int r = 0; r < RB; ++r) {
      const float xs = x[r * ldx + k];
      for (int v = 0; v < VB; ++v) a[r][v] += xs * wv[v];
    }
  }
  for (int r = 0; r < RB; ++r)
    for (int v = 0; v < VB; ++v) store(acc + r * ldacc + v * kLanes, a[r][v]);
}

// The same for `cols` (< kLanes) columns, one at a time, over all of K.
template <int RB>
void in_major_columns(int K, int cols, const float* x, long ldx, const float* w, long ldw,
                      float* acc, long ldacc) {
  for (int c = 0; c < cols; ++c) {
    float a[RB] = {};
    for (int k = 0; k < K; ++k) {
      const float wk = w[k * ldw + c];
      for (int r = 0; r < RB; ++r) a[r] += x[r * ldx + k] * wk;
    }
    for (int r = 0; r < RB; ++r) acc[r * ldacc + c] = a[r];
  }
}

// One block of K for RB rows over `cols` columns: whole tiles, then single vectors.
template <int RB>
void in_major_block(int kn, int cols, const float* x, long ldx, const float* w, long ldw,
                    float* acc, long ldacc, bool first, Prefetch pf) {
  const int tw = kInVecs * kLanes;
  int c = 0;
  for (; c + tw <= cols; c += tw)
    in_major_tile<RB, kInVecs>(kn, x, ldx, w + c, ldw, acc + c, ldacc, first, pf);
  for (; c + kLanes <= cols; c += kLanes)
    in_major_tile<RB, 1>(kn, x, ldx, w + c, ldw, acc + c, ldacc, first, pf);
}

// Few rows (the memory-bound case): W streams by its rows, up to stream_columns(rows)
// contiguous columns of each (what the hardware prefetchers follow, as a BLAS sgemv
// reads), into accumulators in L1 (acc: rows * stream_columns(rows) floats); four rows
// of W at a time, each element still summed k by k.
constexpr int kStreamRows = 4;
inline int stream_columns(int rows) {
  const int n = 4096 / rows / kLanes * kLanes;
  return n < 2048 ? n : 2048;
}

void in_major_stream(int rows, int K, int cols, const float* x, long ldx, const float* w, long ldw,
                     const float* bias, float* y, long ldy, bool accumulate, float* acc) {
  // The accumulators half a page away from W's rows (modulo 4 KB): a load whose address
  // matches a pending store's in its low 12 bits waits for it ("4K aliasing"), and every
  // row of W would sit at the same offset as the accumulators' stores.
  const uintptr_t offset =
      (reinterpret_cast<uintptr_t>(acc) - reinterpret_cast<uintptr_t>(w)) & 4095;
  acc += ((2048 - offset) & 4095) / sizeof(float);
  const int chunk = stream_columns(rows);
  for (int c0 = 0; c0 < cols; c0 += chunk) {
    const int n = cols - c0 < chunk ? cols - c0 : chunk;
    for (long i = 0; i < (long)rows * n; ++i) acc[i] = 0.0f;
    int k = 0;
    for (; k + 4 <= K; k += 4) {
      const float* w0 = w + k * ldw + c0;
      const float *w1 = w0 + ldw, *w2 = w1 + ldw, *w3 = w2 + ldw;
      for (int r = 0; r < rows; ++r) {
        const float* xr = x + r * ldx + k;
        const float x0 = xr[0], x1 = xr[1], x2 = xr[2], x3 = xr[3];
        float* a = acc + (long)r * n;
        for (int j = 0; j < n; ++j) {
          float s = a[j];
          s += x0 * w0[j];
          s += x1 * w1[j];
          s += x2 * w2[j];
          s += x3 * w3[j];
          a[j] = s;
        }
      }
    }
    for (; k < K; ++k) {
      const float* wk = w + k * ldw + c0;
      for (int r = 0; r < rows; ++r) {
        const float xs = x[r * ldx + k];
        float* a = acc + (long)r * n;
        for (int j = 0; j < n; ++j) a[j] += xs * wk[j];
      }
    }
    for (int r = 0; r < rows; ++r)
      finish_row(n, acc + (long)r * n, bias ? bias + c0 : nullptr, y + r * ldy + c0, accumulate);
  }
}

template <int RB>
void in_major_tail(int K, int c0, int cols, const float* x, long ldx, const float* w, long ldw,
                   float* acc, long ldacc) {
  in_major_columns<RB>(K, cols - c0, x, ldx, w + c0, ldw, acc + c0, ldacc);
}

// ---------------------------------------------------------------- out-major: W [N, K]
// Element (r, j) = Σ_k x[r, k] · w[j, k]: kLanes accumulators over k = lane (mod kLanes),
// their tree (reduce), then the k that fill no vector, ascending.

// The weight rows `pf.ahead` rows further down (a tile or two) are prefetched meanwhile.
template <int RB, int JB>
void out_major_tile(int K, const float* x, long ldx, const float* w, long ldw, const float* bias,
                    float* y, long ldy, bool accumulate, Prefetch pf) {
  Vec acc[RB][JB];
  for (int r = 0; r < RB; ++r)
    for (int j = 0; j < JB; ++j) acc[r][j] = Vec{};
  const int kv = K / kLanes * kLanes;
  for (int k = 0; k < kv; k += kLanes) {
    if (k % 16 == 0 && pf.at(k / 16))  // a cache line holds 16 floats
      for (int j = 0; j < JB; ++j) __builtin_prefetch(w + (j + pf.ahead) * ldw + k, 0, 2);
    Vec wv[JB];
    for (int j = 0; j < JB; ++j) wv[j] = load(w + j * ldw + k);
    for (int r = 0; r < RB; ++r) {
      const Vec xv = load(x + r * ldx + k);
      for (int j = 0; j < JB; ++j) acc[r][j] += xv * wv[j];
    }
  }
  for (int r = 0; r < RB; ++r)
    for (int j = 0; j < JB; ++j) {
      float s = reduce(acc[r][j]);
      for (int k = kv; k < K; ++k) s += x[r * ldx + k] * w[j * ldw + k];
      y[r * ldy + j] = finish(s, bias, j, &y[r * ldy + j], accumulate);
    }
}

// Weight rows [0, cols) for RB rows: whole tiles, then single weight rows.
template <int RB>
void out_major_rows(int K, int cols, const float* x, long ldx, const float* w, long ldw,
                    const float* bias, float* y, long ldy, bool accumulate, Prefetch pf) {
  int c = 0;
  for (; c + kOutCols <= cols; c += kOutCols)
    out_major_tile<RB, kOutCols>(K, x, ldx, w + c * ldw, ldw, bias ? bias + c : nullptr, y + c, ldy,
                                 accumulate, pf);
  for (; c < cols; ++c)
    out_major_tile<RB, 1>(K, x, ldx, w + c * ldw, ldw, bias ? bias + c : nullptr, y + c, ldy,
                          accumulate, Prefetch{});
}

// FN<rb>(args...) for a runtime rb in 1..6 (tile heights are compile-time constants).
#define PH_BY_ROWS(rb, FN, ...) \
  switch (rb) {                 \
    case 1:                     \
      FN<1>(__VA_ARGS__);       \
      break;                    \
    case 2:                     \
      FN<2>(__VA_ARGS__);       \
      break;                    \
    case 3:                     \
      FN<3>(__VA_ARGS__);       \
      break;                    \
    case 4:                     \
      FN<4>(__VA_ARGS__);       \
      break;                    \
    case 5:                     \
      FN<5>(__VA_ARGS__);       \
      break;                    \
    default:                    \
      FN<6>(__VA_ARGS__);       \
      break;                    \
  }
static_assert(kInRows <= 6 && kOutRows <= 6, "PH_BY_ROWS covers 1..6 rows");

// One dot product over n floats, as out_major_tile sums an element.
inline float dot(int n, const float* a, const float* b) {
  Vec acc = Vec{};
  const int nv = n / kLanes * kLanes;
  for (int i = 0; i < nv; i += kLanes) acc += load(a + i) * load(b + i);
  float s = reduce(acc);
  for (int i = nv; i < n; ++i) s += a[i] * b[i];
  return s;
}

}  // namespace

void decode_product_in_major(int rows, int K, int n0, int n1, const float* x, long ldx,
                             const float* w, long ldw, const float* bias, float* y, long ldy,
                             int accumulate, float* scratch, long scratch_floats) {
  if (rows <= kStreamRows && scratch_floats >= (long)rows * stream_columns(rows) + 1024) {
    in_major_stream(rows, K, n1 - n0, x, ldx, w + n0, ldw, bias ? bias + n0 : nullptr, y + n0, ldy,
                    accumulate != 0, scratch);
    return;
  }
  // columns per pass: as many as the accumulators of all the rows fit in scratch
  long fit = (scratch_floats - 1024) / (rows > 0 ? rows : 1) / kLanes * kLanes;
  if (fit < kLanes) fit = kLanes;  // (the caller gives at least rows * kLanes)
  const int pass = fit < n1 - n0 ? (int)fit : n1 - n0;
  for (int c0 = n0; c0 < n1; c0 += pass) {
    const int cols = n1 - c0 < pass ? n1 - c0 : pass;
    const int vector_cols = cols / kLanes * kLanes;
    for (int kb = 0; kb < K; kb += kBlock) {
      const int kn = K - kb < kBlock ? K - kb : kBlock;
      const int ahead = kb + kBlock < K ? kBlock : 0;  // the next block
      const int blocks = (rows + kInRows - 1) / kInRows;
      for (int r0 = 0; r0 < rows; r0 += kInRows) {
        const int rb = rows - r0 < kInRows ? rows - r0 : kInRows;
        PH_BY_ROWS(rb, in_major_block, kn, vector_cols, x + r0 * ldx + kb, ldx, w + kb * ldw + c0,
                   ldw, scratch + (long)r0 * cols, cols, kb == 0,
                   Prefetch{ahead, r0 / kInRows, blocks})
      }
    }
    if (vector_cols < cols)
      for (int r0 = 0; r0 < rows; r0 += kInRows) {
        const int rb = rows - r0 < kInRows ? rows - r0 : kInRows;
        PH_BY_ROWS(rb, in_major_tail, K, vector_cols, cols, x + r0 * ldx, ldx, w + c0, ldw,
                   scratch + (long)r0 * cols, cols)
      }
    for (int r = 0; r < rows; ++r)
      finish_row(cols, scratch + (long)r * cols, bias ? bias + c0 : nullptr, y + r * ldy + c0,
                 accumulate != 0);
  }
}

void decode_product_out_major(int rows, int K, int n0, int n1, const float* x, long ldx,
                              const float* w, long ldw, const float* bias, float* y, long ldy,
                              int accumulate) {
  // One tile of weight rows at a time across all the rows: it stays in L1 for the other
  // row blocks, while they prefetch the tile after next.
  const int panel = kOutCols;
  const int blocks = (rows + kOutRows - 1) / kOutRows;
  for (int p0 = n0; p0 < n1; p0 += panel) {
    const int cols = n1 - p0 < panel ? n1 - p0 : panel;
    const float* bp = bias ? bias + p0 : nullptr;
    for (int r0 = 0; r0 < rows; r0 += kOutRows) {
      const int rb = rows - r0 < kOutRows ? rows - r0 : kOutRows;
      const int ahead = p0 + 3 * panel <= n1 ? 2 * panel : 0;  // the tile after next
      PH_BY_ROWS(rb, out_major_rows, K, cols, x + r0 * ldx, ldx, w + p0 * ldw, ldw, bp,
                 y + r0 * ldy + p0, ldy, accumulate != 0, Prefetch{ahead, r0 / kOutRows, blocks})
    }
  }
}

#undef PH_BY_ROWS

void decode_attention_row(int n, int hd, const float* q, const float* k, const float* v,
                          long pos_stride, float scale, const float* bias, float* scores,
                          float* out) {
  float max = -INFINITY;
  for (int j = 0; j < n; ++j) {
    float s = dot(hd, q, k + j * pos_stride) * scale;
    if (bias) s += bias[j];
    scores[j] = s;
    max = s > max ? s : max;
  }
  // the engine's exponential (exp_math.h), as the training pass's softmax uses it
  for (int j = 0; j < n; ++j) scores[j] = exp_inline(scores[j] - max);
  double sum = 0.0;
  for (int j = 0; j < n; ++j) sum += scores[j];
  for (int i = 0; i < hd; ++i) out[i] = 0.0f;
  for (int j = 0; j < n; ++j) {
    const float p = scores[j];
    const float* vj = v + j * pos_stride;
    for (int i = 0; i < hd; ++i) out[i] += p * vj[i];
  }
  const float inv = (float)(1.0 / sum);
  for (int i = 0; i < hd; ++i) out[i] *= inv;
}

}  // namespace PH_ISA
}  // namespace ph
