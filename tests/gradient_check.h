// Finite-difference checks of d loss / d (what a method trains: the injection's virtual
// tokens and prefix, and a classification head) on the engine's TrainingPass.
//
// Float32 differences are noisy, so each check is along a direction: the central
// difference of the loss along u must equal <grad, u>, for u the normalised gradient
// (the most sensitive direction) and for random unit directions.
#pragma once

#include <catch.hpp>

#include <cmath>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "models/engine/engine.h"

namespace ph::test {

// Every trained value in a fixed order: virtual tokens, prefix, the head's tensors by
// name, then the adapter prompts and gates.
inline std::vector<float*> trained_values(Injection& inj) {
  std::vector<float*> p;
  for (auto& v : inj.virtual_tokens) p.push_back(&v);
  for (auto& v : inj.prefix) p.push_back(&v);
  for (auto& [name, t] : inj.head)
    for (auto& v : t) p.push_back(&v);
  for (auto& v : inj.adapter_prompts) p.push_back(&v);
  for (auto& v : inj.adapter_gates) p.push_back(&v);
  return p;
}

// The gradient in trained_values' order.
inline std::vector<float> trained_grad(const InjectionGrad& g) {
  std::vector<float> v(g.virtual_tokens.begin(), g.virtual_tokens.end());
  v.insert(v.end(), g.prefix.begin(), g.prefix.end());
  for (const auto& [name, t] : g.head) v.insert(v.end(), t.begin(), t.end());
  v.insert(v.end(), g.adapter_prompts.begin(), g.adapter_prompts.end());
  v.insert(v.end(), g.adapter_gates.begin(), g.adapter_gates.end());
  return v;
}

// An injection of `sets` sets of n_virtual virtual tokens and a prefix of n_prefix
// positions (none of either when 0), drawn from `normal`.
inline Injection random_injection(const ModelConfig& c, int sets, int n_virtual, int n_prefix,
                                  std::normal_distribution<float>& normal, std::mt19937& rng) {
  Injection inj;
  if (n_virtual) {
    inj.virtual_tokens = xt::zeros<float>({sets, n_virtual, c.dim});
    for (auto& v : inj.virtual_tokens) v = normal(rng);
  }
  if (n_prefix) {
    inj.prefix = xt::zeros<float>({c.n_layers, 2, c.n_kv_heads, n_prefix, c.head_dim});
    for (auto& v : inj.prefix) v = normal(rng);
  }
  return inj;
}

inline double loss_along(const Model& model, const std::vector<Sequence>& batch, Injection inj,
                         const std::vector<double>& u, double eps, PassOptions options = {}) {
  auto p = trained_values(inj);
  for (size_t i = 0; i < p.size(); ++i) *p[i] += (float)(eps * u[i]);
  TrainingPass pass(model, options);
  return pass.forward(batch, inj);
}

// CHECKs the directional derivatives of f (f_along(u, eps) = f(x + eps u)) against `grad`
// along the normalised gradient and three random unit directions, all of them nonzero
// only on the values [first, last).
inline void check_function_directions(
    const std::function<double(const std::vector<double>&, double)>& f_along,
    const std::vector<float>& grad, size_t first, size_t last, const std::string& name,
    std::mt19937& rng) {
  std::vector<float> g(grad.size(), 0.0f);
  std::copy(grad.begin() + first, grad.begin() + last, g.begin() + first);
  double norm = 0.0;
  for (float v : g) norm += (double)v * v;
  norm = std::sqrt(norm);
  REQUIRE(norm > 0.0);
  std::vector<std::vector<double>> directions;
  directions.emplace_back(g.begin(), g.end());
  std::normal_distribution<double> normal;
  for (int k = 0; k < 3; ++k) {
    std::vector<double> u(g.size(), 0.0);
    for (size_t i = first; i < last; ++i) u[i] = normal(rng);
    directions.push_back(u);
  }
  for (auto& u : directions) {
    double un = 0.0;
    for (double v : u) un += v * v;
    for (double& v : u) v /= std::sqrt(un);
    const double eps = 1e-2;
    const double fd = (f_along(u, eps) - f_along(u, -eps)) / (2 * eps);
    double analytic = 0.0;
    for (size_t i = 0; i < g.size(); ++i) analytic += g[i] * u[i];
    INFO(name << ": finite difference " << fd << ", analytic " << analytic << ", |grad| " << norm);
    CHECK(std::abs(fd - analytic) <= 2e-3 * norm + 1e-5);
  }
}

// As above for the loss of TrainingPass(model, options) at `inj` (trained_grad's order).
inline void check_directions(const Model& model, const std::vector<Sequence>& batch,
                             const Injection& inj, const std::vector<float>& grad, size_t first,
                             size_t last, const std::string& name, std::mt19937& rng,
                             PassOptions options = {}) {
  check_function_directions(
      [&](const std::vector<double>& u, double eps) {
        return loss_along(model, batch, inj, u, eps, options);
      },
      grad, first, last, name, rng);
}

}  // namespace ph::test
