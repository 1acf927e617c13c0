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
#include <string.h>

#include "models/engine/isa/kernel_bodies.h"

namespace ph {
namespace PH_ISA {

namespace {

// Lanes of a vector register, and the register tiles (what fits the register file: 32
// registers with AVX-512, 16 below it).
#if defined(__AVX512F__)
#define PH_LANES 16
constexpr int kInRows = 6, kInVecs = 4;    // in-major tile: rows x vectors of columns
constexpr int kOutRows = 4, kOutCols = 4;  // out-major tile: rows x weight rows
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

// The end of every output element: sum (+ bias), then (+ the value already in y).
inline float finish(float sum, const float* bias, int j, const float* y, bool accumulate) {
  if (bias) sum += bias[j];
  return accumulate ? *y + sum : sum;
}

// ---------------------------------------------------------------- in-major: W [K, N]
// Element (r, j) = Σ_k x[r, k] · w[k, j], one accumulator, k ascending, in all three
// ways below: a lane of a register tile, a lane of the streaming loop, or a scalar.

// RB rows x VB vectors of columns starting at w's column 0.
template <int RB, int VB>
void in_major_tile(int K, const float* x, long ldx, const float* w, long ldw, const float* bias,
                   float* y, long ldy, bool accumulate) {
  Vec acc[RB][VB];
  for (int r = 0; r < RB; ++r)
    for (int v = 0; v < VB; ++v) acc[r][v] = Vec{};
  for (int k = 0; k < K; ++k) {
    const float* wk = w + k * ldw;
    Vec wv[VB];
    for (int v = 0; v < VB; ++v) wv[v] = load(wk + v * kLanes);
    for (int r = 0; r < RB; ++r) {
      const float xs = x[r * ldx + k];
      for (int v = 0; v < VB; ++v) acc[r][v] += xs * wv[v];
    }
  }
  for (int r = 0; r < RB; ++r)
    for (int v = 0; v < VB; ++v) {
      float* yr = y + r * ldy + v * kLanes;
      Vec s = acc[r][v];
      if (bias) s += load(bias + v * kLanes);
      store(yr, accumulate ? load(yr) + s : s);
    }
}

// The same for `cols` (< kLanes) columns, one at a time.
template <int RB>
void in_major_columns(int K, int cols, const float* x, long ldx, const float* w, long ldw,
                      const float* bias, float* y, long ldy, bool accumulate) {
  for (int c = 0; c < cols; ++c) {
    float acc[RB] = {};
    for (int k = 0; k < K; ++k) {
      const float wk = w[k * ldw + c];
      for (int r = 0; r < RB; ++r) acc[r] += x[r * ldx + k] * wk;
    }
    for (int r = 0; r < RB; ++r)
      y[r * ldy + c] = finish(acc[r], bias, c, &y[r * ldy + c], accumulate);
  }
}

// Columns [0, cols) of RB rows from unpacked W: single vectors, then single columns (the
// columns that fill no whole tile).
template <int RB>
void in_major_tail(int K, int cols, const float* x, long ldx, const float* w, long ldw,
                   const float* bias, float* y, long ldy, bool accumulate) {
  int c = 0;
  for (; c + kLanes <= cols; c += kLanes)
    in_major_tile<RB, 1>(K, x, ldx, w + c, ldw, bias ? bias + c : nullptr, y + c, ldy, accumulate);
  if (c < cols)
    in_major_columns<RB>(K, cols - c, x, ldx, w + c, ldw, bias ? bias + c : nullptr, y + c, ldy,
                         accumulate);
}

// Few rows: W streams by its rows, kStreamCols contiguous columns at a time, into
// accumulators in L1 (the memory-bound case: each weight is used by at most
// kStreamRows rows, and contiguous reads are what the prefetchers follow).
constexpr int kStreamRows = 4, kStreamCols = 512;

template <int RB>
void in_major_stream(int K, int cols, const float* x, long ldx, const float* w, long ldw,
                     const float* bias, float* y, long ldy, bool accumulate) {
  float acc[RB][kStreamCols];
  for (int c0 = 0; c0 < cols; c0 += kStreamCols) {
    const int n = cols - c0 < kStreamCols ? cols - c0 : kStreamCols;
    for (int r = 0; r < RB; ++r)
      for (int j = 0; j < n; ++j) acc[r][j] = 0.0f;
    for (int k = 0; k < K; ++k) {
      const float* wk = w + k * ldw + c0;
      for (int r = 0; r < RB; ++r) {
        const float xs = x[r * ldx + k];
        float* a = acc[r];
        for (int j = 0; j < n; ++j) a[j] += xs * wk[j];
      }
    }
    for (int r = 0; r < RB; ++r)
      for (int j = 0; j < n; ++j)
        y[r * ldy + c0 + j] = finish(acc[r][j], bias, c0 + j, &y[r * ldy + c0 + j], accumulate);
  }
}

// ---------------------------------------------------------------- out-major: W [N, K]
// Element (r, j) = Σ_k x[r, k] · w[j, k]: kLanes accumulators over k = lane (mod kLanes),
// their tree (reduce), then the k that fill no vector, ascending.

template <int RB, int JB>
void out_major_tile(int K, const float* x, long ldx, const float* w, long ldw, const float* bias,
                    float* y, long ldy, bool accumulate) {
  Vec acc[RB][JB];
  for (int r = 0; r < RB; ++r)
    for (int j = 0; j < JB; ++j) acc[r][j] = Vec{};
  const int kv = K / kLanes * kLanes;
  for (int k = 0; k < kv; k += kLanes) {
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
                    const float* bias, float* y, long ldy, bool accumulate) {
  int c = 0;
  for (; c + kOutCols <= cols; c += kOutCols)
    out_major_tile<RB, kOutCols>(K, x, ldx, w + c * ldw, ldw, bias ? bias + c : nullptr, y + c, ldy,
                                 accumulate);
  for (; c < cols; ++c)
    out_major_tile<RB, 1>(K, x, ldx, w + c * ldw, ldw, bias ? bias + c : nullptr, y + c, ldy,
                          accumulate);
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
static_assert(kInRows <= 6 && kOutRows <= 6 && kStreamRows <= 6, "PH_BY_ROWS covers 1..6 rows");

template <int RB>
void in_major_packed_tile(int K, const float* x, long ldx, const float* tile, const float* bias,
                          float* y, long ldy, bool accumulate) {
  in_major_tile<RB, kInVecs>(K, x, ldx, tile, kInVecs * kLanes, bias, y, ldy, accumulate);
}

// Many rows, in-major: W is copied a panel of whole tiles at a time into `pack`, each
// tile's columns contiguous ([tile][K][tile width]), and every row block runs over the
// copy from L2. W's own rows are far apart, and a power-of-two stride maps them onto a
// few cache sets: reused in place, they would come from memory for every row block.
constexpr long kPanelFloats = 1L << 18;  // 1 MB: a panel stays in L2

void in_major_packed(int rows, int K, int n0, int n1, const float* x, long ldx, const float* w,
                     long ldw, const float* bias, float* y, long ldy, bool accumulate, float* pack,
                     int panel_tiles) {
  const int tw = kInVecs * kLanes;
  for (int p0 = n0; p0 < n1; p0 += panel_tiles * tw) {
    const int cols = n1 - p0 < panel_tiles * tw ? n1 - p0 : panel_tiles * tw;
    const int tiles = cols / tw;
    for (int k = 0; k < K; ++k)
      for (int t = 0; t < tiles; ++t) {
        const float* src = w + k * ldw + p0 + t * tw;
        float* dst = pack + ((long)t * K + k) * tw;
        for (int i = 0; i < tw; ++i) dst[i] = src[i];
      }
    for (int r0 = 0; r0 < rows; r0 += kInRows) {
      const int rb = rows - r0 < kInRows ? rows - r0 : kInRows;
      const float* xr = x + r0 * ldx;
      float* yr = y + r0 * ldy + p0;
      for (int t = 0; t < tiles; ++t) {
        const float* bt = bias ? bias + p0 + t * tw : nullptr;
        PH_BY_ROWS(rb, in_major_packed_tile, K, xr, ldx, pack + (long)t * K * tw, bt, yr + t * tw,
                   ldy, accumulate)
      }
      if (cols > tiles * tw) {  // the end of the range: fewer columns than a tile
        const float* bt = bias ? bias + p0 + tiles * tw : nullptr;
        PH_BY_ROWS(rb, in_major_tail, K, cols - tiles * tw, xr, ldx, w + p0 + tiles * tw, ldw, bt,
                   yr + tiles * tw, ldy, accumulate)
      }
    }
  }
}

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
                             int accumulate, float* pack, long pack_floats) {
  const long tile_floats = (long)K * kInVecs * kLanes;
  const long usable = pack_floats < kPanelFloats ? pack_floats : kPanelFloats;
  if (rows > kStreamRows && pack && tile_floats <= pack_floats) {
    const long panel_tiles = usable / tile_floats > 1 ? usable / tile_floats : 1;
    in_major_packed(rows, K, n0, n1, x, ldx, w, ldw, bias, y, ldy, accumulate != 0, pack,
                    (int)panel_tiles);
    return;
  }
  for (int r0 = 0; r0 < rows; r0 += kStreamRows) {
    const int rb = rows - r0 < kStreamRows ? rows - r0 : kStreamRows;
    PH_BY_ROWS(rb, in_major_stream, K, n1 - n0, x + r0 * ldx, ldx, w + n0, ldw,
               bias ? bias + n0 : nullptr, y + r0 * ldy + n0, ldy, accumulate != 0)
  }
}

void decode_product_out_major(int rows, int K, int n0, int n1, const float* x, long ldx,
                              const float* w, long ldw, const float* bias, float* y, long ldy,
                              int accumulate) {
  // Weight rows a panel at a time across all the rows: a panel (about 32 KB) stays in L1
  // for the other row blocks.
  const int panel = (8192 / (K > 0 ? K : 1) / kOutCols) * kOutCols > kOutCols
                        ? (8192 / (K > 0 ? K : 1) / kOutCols) * kOutCols
                        : kOutCols;
  for (int p0 = n0; p0 < n1; p0 += panel) {
    const int cols = n1 - p0 < panel ? n1 - p0 : panel;
    const float* bp = bias ? bias + p0 : nullptr;
    for (int r0 = 0; r0 < rows; r0 += kOutRows) {
      const int rb = rows - r0 < kOutRows ? rows - r0 : kOutRows;
      PH_BY_ROWS(rb, out_major_rows, K, cols, x + r0 * ldx, ldx, w + p0 * ldw, ldw, bp,
                 y + r0 * ldy + p0, ldy, accumulate != 0)
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
  double sum = 0.0;
  for (int j = 0; j < n; ++j) {
    scores[j] = expf(scores[j] - max);
    sum += scores[j];
  }
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
