#include "models/engine/kernels.h"

#include <algorithm>
#include <cmath>

#include "models/engine/isa/kernel_table.h"
#include "models/engine/parallel.h"

// The loops themselves are kernel bodies (engine/isa/), built once per instruction set
// and called through ph::kernels() (isa.h); this file cuts the work into the threads'
// slices and calls the active level's body per slice. The table is taken on the calling
// thread, before the slices: one level for the whole call, and a bad $PROMPTHOST_ISA
// throws there, not in a pool thread (which cannot pass an exception on).

namespace ph {

// ---------------------------------------------------------------- exponentials

float exp_approx(float x) {
  kernels().exp_shifted_row(1, 0.0f, &x);  // x - 0 is x: the bodies' exponential itself
  return x;
}

void exp_shifted(int n, float shift, float* row) {
  kernels().exp_shifted_row(n, shift, row);
}

float softmax_inplace(int n, float* row) {
  return kernels().softmax_row(n, row);
}

// ---------------------------------------------------------------- normalisation

void norm_forward(const Norm& norm, float eps, int rows, int width, const float* x, float* y,
                  float* mean, float* rstd) {
  const KernelTable& k = kernels();
  parallel_for(rows, width, [&](long r0, long r1) {
    k.norm_forward_rows(norm.w, norm.b, eps, r1 - r0, width, x + (size_t)r0 * width,
                        y + (size_t)r0 * width, mean ? mean + r0 : nullptr, rstd + r0);
  });
}

void norm_backward(const Norm& norm, int rows, int width, const float* x, const float* mean,
                   const float* rstd, const float* dy, float* dx, bool accumulate) {
  const KernelTable& k = kernels();
  parallel_for(rows, width, [&](long r0, long r1) {
    const size_t at = (size_t)r0 * width;
    k.norm_backward_rows(norm.w, norm.b, r1 - r0, width, x + at, mean ? mean + r0 : nullptr,
                         rstd + r0, dy + at, dx + at, accumulate);
  });
}

// ---------------------------------------------------------------- rotary embedding

void RopeTable::ensure(int positions, int dim, float theta) {
  const size_t half = dim / 2;
  if (dim == head_dim && cos.size() >= (size_t)positions * half) return;
  head_dim = dim;
  cos.resize((size_t)positions * half);
  sin.resize((size_t)positions * half);
  for (int p = 0; p < positions; ++p) {
    for (size_t i = 0; i < half; ++i) {
      const double inv = 1.0 / std::pow((double)theta, (2.0 * i) / dim);
      const double angle = p * inv;
      cos[(size_t)p * half + i] = (float)std::cos(angle);
      sin[(size_t)p * half + i] = (float)std::sin(angle);
    }
  }
}

void rope_apply(const RopeTable& table, int rows, const int* positions, int heads, float* x, int ld,
                bool inverse) {
  const KernelTable& k = kernels();
  parallel_for(rows, (long)heads * table.head_dim, [&](long r0, long r1) {
    k.rope_rows(table.cos.data(), table.sin.data(), table.head_dim, r1 - r0, positions + r0, heads,
                x + (size_t)r0 * ld, ld, inverse ? -1.0f : 1.0f);
  });
}

// ---------------------------------------------------------------- activations

static_assert((int)Activation::kGeluTanh == isa_v2::kBodyGeluTanh &&
                  (int)Activation::kGeluErf == isa_v2::kBodyGeluErf &&
                  (int)Activation::kRelu == isa_v2::kBodyRelu &&
                  (int)Activation::kSilu == isa_v2::kBodySilu,
              "the bodies number the activations as ph::Activation");

void gelu_forward(long n, const float* x, float* y) {
  activation_forward(Activation::kGeluTanh, n, x, y);
}

void gelu_backward(long n, const float* x, const float* dy, float* dx) {
  activation_backward(Activation::kGeluTanh, n, x, dy, dx);
}

void swiglu_forward(int rows, int ffn, const float* gate_up, float* y) {
  gated_forward(Activation::kSilu, rows, ffn, gate_up, y);
}

void swiglu_backward(int rows, int ffn, const float* gate_up, const float* dy, float* dgate_up) {
  gated_backward(Activation::kSilu, rows, ffn, gate_up, dy, dgate_up);
}

void activation_forward(Activation act, long n, const float* x, float* y) {
  const KernelTable& k = kernels();
  parallel_for(n, 1, [&](long i0, long i1) {
    k.activation_forward_span((int)act, i1 - i0, x + i0, y + i0);
  });
}

void activation_backward(Activation act, long n, const float* x, const float* dy, float* dx) {
  const KernelTable& k = kernels();
  parallel_for(n, 1, [&](long i0, long i1) {
    k.activation_backward_span((int)act, i1 - i0, x + i0, dy + i0, dx + i0);
  });
}

void gated_forward(Activation act, int rows, int ffn, const float* gate_up, float* y) {
  const KernelTable& k = kernels();
  parallel_for(rows, ffn, [&](long r0, long r1) {
    k.gated_forward_rows((int)act, r1 - r0, ffn, gate_up + (size_t)r0 * 2 * ffn,
                         y + (size_t)r0 * ffn);
  });
}

void gated_backward(Activation act, int rows, int ffn, const float* gate_up, const float* dy,
                    float* dgate_up) {
  const KernelTable& k = kernels();
  parallel_for(rows, ffn, [&](long r0, long r1) {
    const size_t at = (size_t)r0 * 2 * ffn;
    k.gated_backward_rows((int)act, r1 - r0, ffn, gate_up + at, dy + (size_t)r0 * ffn,
                          dgate_up + at);
  });
}

// ---------------------------------------------------------------- copies

// A copy is memcpy's, which glibc already picks per CPU.
void copy_floats(long n, const float* src, float* dst) {
  parallel_for(n, 1, [&](long i0, long i1) { std::copy(src + i0, src + i1, dst + i0); });
}

void add_floats(long n, const float* src, float* dst) {
  const KernelTable& k = kernels();
  parallel_for(n, 1, [&](long i0, long i1) { k.add_span(i1 - i0, src + i0, dst + i0); });
}

}  // namespace ph
