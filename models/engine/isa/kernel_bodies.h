// The kernel bodies compiled once per x86-64 level (isa.h): plain loops over raw float
// buffers, which the compiler vectorises for the level's instructions.
//
// Rules for every file in engine/isa/ (each is compiled three times, with
// -march=x86-64-v2, -v3 and -v4, into namespaces ph::isa_v2, ph::isa_v3, ph::isa_v4):
//   - include only this header, isa/exp_math.h (its shared scalar math, internal linkage)
//     and C headers (<cmath>, <cstddef>, <cstdint>): a template
//     or inline function from another header (std::vector, xtensor) would be emitted in
//     each object with that level's instructions under one symbol name, and the linker
//     could pick the AVX-512 copy for a machine without it. The test isa_symbols checks
//     that these objects define no weak symbols.
//   - no threads: the caller (kernels.cpp, ...) slices the rows and calls a body per slice.
//   - a body's result for a row never depends on the other rows or the slice it is in.
//
// No include guard: isa.cpp includes it once per namespace to declare the three sets.
// The list of bodies, PH_ISA_KERNELS(X), builds the dispatch table (isa.h).

#ifndef PH_ISA
#error "define PH_ISA (the namespace of the level being compiled or declared)"
#endif

#include <cstddef>
#include <cstdint>

namespace ph {
namespace PH_ISA {

// y[i] = x[i] * scale for i < n (a first body, used by the dispatch test)
void scale_floats(long n, float scale, const float* x, float* y);

// --- The engine's row-wise kernels (engine/kernels.cpp, engine/attention.cpp) ----------
// Bodies over a slice: kernels.cpp cuts the rows (or elements) into the threads' slices
// and calls one body per slice, so each takes the slice's own pointers.

// The activations, numbered as ph::Activation (config/model_config.h; kernels.cpp checks).
enum BodyActivation : int { kBodyGeluTanh = 0, kBodyGeluErf = 1, kBodyRelu = 2, kBodySilu = 3 };

// row[0, n) <- exp(row[0, n) - shift), the engine's polynomial e^x (isa/exp_math.h)
void exp_shifted_row(int n, float shift, float* row);
// row[0, n) <- softmax(row[0, n)); returns the log-sum-exp of the input
float softmax_row(int n, float* row);
// d[0, n) <- p ⊙ (d - delta): softmax's backward given delta = rowsum(dO ⊙ O)
void softmax_backward_row(int n, const float* p, float delta, float* d);
// Σ a[i] b[i], accumulated in double
float dot_row(int n, const float* a, const float* b);
// dst[0, n) += src[0, n)
void add_span(long n, const float* src, float* dst);

// LayerNorm (b != nullptr) or RMSNorm (b == nullptr) of rows [rows, width]; per row the
// mean (LayerNorm, when mean != nullptr) and 1/std, which the backward needs.
void norm_forward_rows(const float* w, const float* b, float eps, long rows, int width,
                       const float* x, float* y, float* mean, float* rstd);
// dx (+)= d norm(x) / dx · dy over rows [rows, width]
void norm_backward_rows(const float* w, const float* b, long rows, int width, const float* x,
                        const float* mean, const float* rstd, const float* dy, float* dx,
                        bool accumulate);

// Rotary embedding (rotate_half) of `heads` vectors of head_dim per row (row stride ld),
// by the row's position in the tables cos/sin [positions, head_dim/2]; sign -1: inverse.
void rope_rows(const float* cos, const float* sin, int head_dim, long rows, const int* positions,
               int heads, float* x, long ld, float sign);

// y = f(x) and dx = dy f'(x) over n elements; f is a BodyActivation
void activation_forward_span(int act, long n, const float* x, float* y);
void activation_backward_span(int act, long n, const float* x, const float* dy, float* dx);
// Gated over fused rows [gate (ffn) | up (ffn)]: y[rows, ffn] = f(gate) up, and back to
// dgate_up[rows, 2 ffn] from dy[rows, ffn]
void gated_forward_rows(int act, long rows, int ffn, const float* gate_up, float* y);
void gated_backward_rows(int act, long rows, int ffn, const float* gate_up, const float* dy,
                         float* dgate_up);

// --- Decoding (decode_bodies.cpp; BatchDecoder, batch_decode.h) ---------------------------
// Element (r, j) of each is summed in an order that depends on K (and the level) only,
// never on `rows`, on n0/n1 or on the other rows, so a caller may slice the columns over
// threads and batch any rows together.
//
// y[r, j] (= or, with accumulate, +=) Σ_k x[r, k] · w[k, j] (+ bias[j]) for r < rows and
// n0 <= j < n1: Conv1D weights [K, N], row stride ldw (>= N). scratch: scratch_floats
// (>= rows * 16 + 1024) of room for the accumulators; rows <= 4 stream W by its rows with
// rows * 2048 + 1024, and rows * (n1 - n0) + 1024 take the columns in one pass.
void decode_product_in_major(int rows, int K, int n0, int n1, const float* x, long ldx,
                             const float* w, long ldw, const float* bias, float* y, long ldy,
                             int accumulate, float* scratch, long scratch_floats);
// The same with PyTorch's Linear weights [N, K]: Σ_k x[r, k] · w[j, k].
void decode_product_out_major(int rows, int K, int n0, int n1, const float* x, long ldx,
                              const float* w, long ldw, const float* bias, float* y, long ldy,
                              int accumulate);
// One query of one head over its sequence's keys 0..n-1 (n >= 1; key j at k + j·pos_stride,
// value j at v + j·pos_stride): out[hd] = Σ_j p_j v_j, p = softmax_j(scale · q·k_j + bias[j])
// (bias: null, or n floats). scores: n floats of scratch.
void decode_attention_row(int n, int hd, const float* q, const float* k, const float* v,
                          long pos_stride, float scale, const float* bias, float* scores,
                          float* out);

}  // namespace PH_ISA
}  // namespace ph

// clang-format off
#ifndef PH_ISA_ENGINE_KERNELS
#define PH_ISA_ENGINE_KERNELS(X) \
  X(exp_shifted_row)             \
  X(softmax_row)                 \
  X(softmax_backward_row)        \
  X(dot_row)                     \
  X(add_span)                    \
  X(norm_forward_rows)           \
  X(norm_backward_rows)          \
  X(rope_rows)                   \
  X(activation_forward_span)     \
  X(activation_backward_span)    \
  X(gated_forward_rows)          \
  X(gated_backward_rows)
#endif
// clang-format on

#ifndef PH_ISA_KERNELS
#define PH_ISA_KERNELS(X) \
  X(scale_floats)             \
  PH_ISA_ENGINE_KERNELS(X)    \
  X(decode_product_in_major)  \
  X(decode_product_out_major) \
  X(decode_attention_row)
#endif
