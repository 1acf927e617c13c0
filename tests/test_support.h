// Paths and small helpers shared by the test suites.
#pragma once

#include <string>

namespace ph::test {

// The fixtures folder: $PROMPTHOST_FIXTURES, else tests/fixtures of the source tree.
std::string fixtures_dir();
// A path inside the source tree, e.g. source_path("models/demo/hf").
std::string source_path(const std::string& relative);
// A fresh empty temporary folder (removed by the OS's tmp cleaning, named for the test).
std::string temp_dir(const std::string& name);

}  // namespace ph::test

#include <cstddef>

namespace ph::test {

// ‖a − b‖₂ / ‖b‖₂ over n elements (b is the reference); 0 when both are zero.
double relative_l2(const float* a, const float* b, size_t n);
double relative_l2(const double* a, const double* b, size_t n);

}  // namespace ph::test

#include <vector>

#include <xtensor/xtensor.hpp>

namespace ph::test {

// PEFT's flat key/value prefix [n, L*2*kv_heads*head_dim] (row 2l = keys of layer l, 2l+1
// = values) <-> the engine's [L, 2, kv_heads, n, head_dim].
xt::xtensor<float, 5> prefix_from_flat(const float* flat, int n, int layers, int kv_heads,
                                       int head_dim);
std::vector<float> prefix_to_flat(const xt::xtensor<float, 5>& prefix);

}  // namespace ph::test

#include <functional>
#include <string>

namespace ph::test {

// The message of the exception fn throws, or "(no error)".
std::string error_message(const std::function<void()>& fn);

}  // namespace ph::test

#include <catch.hpp>

#include "models/common/error.h"

namespace ph::test {

// The message of the ph::Error fn throws (fails the test if it throws none; any other
// exception propagates and fails it too).
template <class Fn>
std::string error_of(Fn&& fn) {
  try {
    fn();
  } catch (const ph::Error& e) {
    return e.what();
  }
  FAIL("no ph::Error thrown");
  return "";
}

}  // namespace ph::test

#include <cstdint>

namespace ph {
struct Model;
}

namespace ph::test {

// The engine's key/value cache after running `tokens` from position 0, flattened in the
// injection's prefix order [L, 2, kv_heads, n, head_dim]: what a prefix "from text" must be.
std::vector<float> kv_cache_prefix(const ph::Model& model, const std::vector<int32_t>& tokens);

}  // namespace ph::test
