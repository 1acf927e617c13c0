// The engine's vectorised exponential against libm: every kernel's softmax, GELU and
// SiLU go through it, so its error bounds what the parity tests can reach.
#include <catch.hpp>

#include <cmath>
#include <limits>
#include <vector>

#include "models/engine/kernels.h"

TEST_CASE("exp_approx is within a few ulp of std::exp over its whole range", "[engine]") {
  double worst_rel = 0.0;
  float worst_x = 0.0f;
  // a dense grid over [-87.3, 88.3] and the values softmax meets most (x <= 0)
  for (float x = -87.3f; x <= 88.3f; x += 0.00137f) {
    const double want = std::exp((double)x);
    const double rel = std::abs(ph::exp_approx(x) - want) / want;
    if (rel > worst_rel) worst_rel = rel, worst_x = x;
  }
  INFO("worst relative error " << worst_rel << " at x = " << worst_x);
  CHECK(worst_rel < 4 * std::numeric_limits<float>::epsilon());
  CHECK(ph::exp_approx(0.0f) == 1.0f);
}

TEST_CASE("exp_shifted and softmax match their definitions", "[engine]") {
  std::vector<float> row = {-3.0f, 0.5f, 2.0f, -80.0f, 1.25f};
  const std::vector<float> in = row;
  ph::exp_shifted((int)row.size(), 2.0f, row.data());
  for (size_t i = 0; i < row.size(); ++i)
    CHECK(row[i] == Approx(std::exp((double)in[i] - 2.0)).epsilon(1e-6));
}

TEST_CASE("softmax_inplace sums to one and returns the log-sum-exp", "[engine]") {
  std::vector<float> row = {-3.0f, 0.5f, 2.0f, -80.0f, 1.25f};
  const std::vector<float> in = row;
  double sum = 0.0;
  for (float v : in) sum += std::exp((double)v);
  const float lse = ph::softmax_inplace((int)row.size(), row.data());
  CHECK(lse == Approx(std::log(sum)).epsilon(1e-6));
  for (size_t i = 0; i < row.size(); ++i)
    CHECK(row[i] == Approx(std::exp((double)in[i]) / sum).epsilon(1e-5).margin(1e-30));
}
