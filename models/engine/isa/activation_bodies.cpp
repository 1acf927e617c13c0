// Every activation, plain (y = f(x)) or gated over fused rows [gate | up] (y = f(gate) up),
// forward and backward. The activation is chosen once per call, outside the loops, so
// that each loop inlines its f and vectorises.
#include "models/engine/isa/kernel_bodies.h"

#include "models/engine/isa/exp_math.h"

namespace ph {
namespace PH_ISA {

namespace {

template <class F>
void plain_forward(long n, const float* x, float* y) {
#pragma omp simd
  for (long i = 0; i < n; ++i) y[i] = F::value(x[i]);
}

template <class F>
void plain_backward(long n, const float* x, const float* dy, float* dx) {
#pragma omp simd
  for (long i = 0; i < n; ++i) dx[i] = dy[i] * F::slope(x[i]);
}

template <class F>
void gated_forward(long rows, int ffn, const float* gate_up, float* y) {
  for (long r = 0; r < rows; ++r) {
    const float* g = gate_up + (size_t)r * 2 * ffn;
    const float* u = g + ffn;
    float* yr = y + (size_t)r * ffn;
#pragma omp simd
    for (int i = 0; i < ffn; ++i) yr[i] = F::value(g[i]) * u[i];
  }
}

// y = f(g) u:  dg = dy u f'(g),  du = dy f(g)
template <class F>
void gated_backward(long rows, int ffn, const float* gate_up, const float* dy, float* dgate_up) {
  for (long r = 0; r < rows; ++r) {
    const float* g = gate_up + (size_t)r * 2 * ffn;
    const float* u = g + ffn;
    const float* dyr = dy + (size_t)r * ffn;
    float* dg = dgate_up + (size_t)r * 2 * ffn;
    float* du = dg + ffn;
#pragma omp simd
    for (int i = 0; i < ffn; ++i) {
      du[i] = dyr[i] * F::value(g[i]);
      dg[i] = dyr[i] * u[i] * F::slope(g[i]);
    }
  }
}

// Calls fn(F()) with the activation F of code `act` (a BodyActivation).
template <class Fn>
void with_activation(int act, Fn fn) {
  switch (act) {
    case kBodyGeluTanh:
      return fn(GeluTanh());
    case kBodyGeluErf:
      return fn(GeluErf());
    case kBodyRelu:
      return fn(Relu());
    case kBodySilu:
      return fn(Silu());
  }
}

}  // namespace

void activation_forward_span(int act, long n, const float* x, float* y) {
  with_activation(act, [&](auto f) { plain_forward<decltype(f)>(n, x, y); });
}

void activation_backward_span(int act, long n, const float* x, const float* dy, float* dx) {
  with_activation(act, [&](auto f) { plain_backward<decltype(f)>(n, x, dy, dx); });
}

void gated_forward_rows(int act, long rows, int ffn, const float* gate_up, float* y) {
  with_activation(act, [&](auto f) { gated_forward<decltype(f)>(rows, ffn, gate_up, y); });
}

void gated_backward_rows(int act, long rows, int ffn, const float* gate_up, const float* dy,
                         float* dgate_up) {
  with_activation(act,
                  [&](auto f) { gated_backward<decltype(f)>(rows, ffn, gate_up, dy, dgate_up); });
}

}  // namespace PH_ISA
}  // namespace ph
