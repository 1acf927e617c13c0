// A directional finite-difference check of a gradient. Float32 differences are noisy,
// so the check is along directions: the central difference of the loss along a unit
// direction u must equal <grad, u> (within 2e-3 |grad| + 1e-5), for u the normalised
// gradient (the most sensitive direction) and for three random unit directions.
#pragma once

#include <catch.hpp>

#include <cmath>
#include <functional>
#include <random>
#include <string>
#include <vector>

namespace ph::test {

// loss_at(u, eps): the loss with every value i moved by eps * u[i]. `part` (empty: all)
// is 1 for the values the directions may move and 0 elsewhere: the check then concerns
// that part's gradient alone (which a larger gradient elsewhere could otherwise hide).
inline void check_directional_derivatives(
    const std::function<double(const std::vector<double>& u, double eps)>& loss_at,
    const std::vector<float>& grad, const std::vector<double>& part, std::mt19937& rng,
    const std::string& what) {
  auto in_part = [&](size_t i) { return part.empty() ? 1.0 : part[i]; };
  double norm = 0.0;
  for (size_t i = 0; i < grad.size(); ++i) norm += in_part(i) * grad[i] * grad[i];
  norm = std::sqrt(norm);
  INFO(what);
  REQUIRE(norm > 0.0);
  std::vector<std::vector<double>> directions;
  directions.emplace_back(grad.begin(), grad.end());
  std::normal_distribution<double> normal;
  for (int k = 0; k < 3; ++k) {
    std::vector<double> u(grad.size());
    for (auto& v : u) v = normal(rng);
    directions.push_back(u);
  }
  for (auto& u : directions) {
    double un = 0.0;
    for (size_t i = 0; i < u.size(); ++i) un += (u[i] *= in_part(i)) * u[i];
    for (double& v : u) v /= std::sqrt(un);
    const double eps = 1e-2;
    const double fd = (loss_at(u, eps) - loss_at(u, -eps)) / (2 * eps);
    double analytic = 0.0;
    for (size_t i = 0; i < grad.size(); ++i) analytic += grad[i] * u[i];
    INFO("finite difference " << fd << ", analytic " << analytic << ", |grad| " << norm);
    CHECK(std::abs(fd - analytic) <= 2e-3 * norm + 1e-5);
  }
}

}  // namespace ph::test
