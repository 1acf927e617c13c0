// Row-wise kernels of the two architectures, each forward beside its backward
// (llm.c style). All work on row-major [rows, width] float32 buffers. Backward
// functions return the gradient with respect to the input only.
//
// Every kernel spreads its rows over the engine's threads (parallel.h, static slices: a
// row's result never depends on which thread computed it) when there is enough work,
// and its loops are kernel bodies (engine/isa/) that the compiler vectorises, exponentials
// included (exp_approx below, a polynomial instead of a libm call), built per x86-64
// level: the CPU's widest runs (isa.h). Results are bit-identical per level and thread
// count; levels differ in the last bits.
#pragma once

#include <vector>

#include "models/engine/model.h"

namespace ph {

// --- Exponentials and softmax ---------------------------------------------------------
// e^x for finite x, within about 1 ulp of std::exp on [-87.3, 88.3] (Cephes' expf),
// clamped outside it (so it never returns 0 or inf). One element of the bodies' vectorised
// exponential (engine/isa/exp_math.h), at the active level.
float exp_approx(float x);
// row[0, n) <- softmax(row[0, n)); returns the log-sum-exp of the input.
float softmax_inplace(int n, float* row);
// row[0, n) <- exp(row[0, n) - shift)
void exp_shifted(int n, float shift, float* row);

// --- Normalisation: RMSNorm (norm.b == nullptr) or LayerNorm -------------------------
// Saves per row the mean (LayerNorm only) and 1/std, which backward needs.
void norm_forward(const Norm& norm, float eps, int rows, int width, const float* x, float* y,
                  float* mean, float* rstd);
// dx (+)= d norm(x) / dx · dy
void norm_backward(const Norm& norm, int rows, int width, const float* x, const float* mean,
                   const float* rstd, const float* dy, float* dx, bool accumulate);

// --- Rotary embedding, rotate_half layout --------------------------------------------
// cos/sin tables [positions, head_dim/2], computed in double as transformers does.
struct RopeTable {
  int head_dim = 0;
  std::vector<float> cos, sin;
  void ensure(int positions, int head_dim, float theta);
};
// Rotates `heads` vectors of size head_dim laid side by side in each row (row stride ld)
// by their row's position; inverse = true applies the transpose (backward).
void rope_apply(const RopeTable& table, int rows, const int* positions, int heads, float* x, int ld,
                bool inverse);

// --- Activations --------------------------------------------------------------------
// gpt2: y = gelu_new(x)
void gelu_forward(long n, const float* x, float* y);
void gelu_backward(long n, const float* x, const float* dy, float* dx);
// llama SwiGLU on fused rows [gate (ffn) | up (ffn)]: y[rows, ffn] = silu(gate) * up
void swiglu_forward(int rows, int ffn, const float* gate_up, float* y);
// d gate_up[rows, 2*ffn] from dy[rows, ffn]
void swiglu_backward(int rows, int ffn, const float* gate_up, const float* dy, float* dgate_up);

// Any of the recipe's activations (model_config.h): y = f(x), and gated over fused rows
// [gate (ffn) | up (ffn)]: y[rows, ffn] = f(gate) * up (SwiGLU, GeGLU, T5's gated-gelu).
void activation_forward(Activation act, long n, const float* x, float* y);
void activation_backward(Activation act, long n, const float* x, const float* dy, float* dx);
void gated_forward(Activation act, int rows, int ffn, const float* gate_up, float* y);
void gated_backward(Activation act, int rows, int ffn, const float* gate_up, const float* dy,
                    float* dgate_up);

// --- Plain copies and sums, threaded ----------------------------------------------------
void copy_floats(long n, const float* src, float* dst);
// dst += src
void add_floats(long n, const float* src, float* dst);

}  // namespace ph
