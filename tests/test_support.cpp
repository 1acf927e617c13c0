#include "test_support.h"

#include <cstdlib>
#include <filesystem>

namespace ph::test {

std::string fixtures_dir() {
  if (const char* env = std::getenv("PROMPTHOST_FIXTURES"); env && *env) return env;
  return source_path("tests/fixtures");
}

std::string source_path(const std::string& relative) {
  return std::string(PROMPTHOST_SOURCE_DIR) + "/" + relative;
}

std::string temp_dir(const std::string& name) {
  namespace fs = std::filesystem;
  fs::path dir = fs::path(PROMPTHOST_BINARY_DIR) / "test-tmp" / name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir.string();
}

}  // namespace ph::test

#include <cmath>

namespace ph::test {

double relative_l2(const float* a, const float* b, size_t n) {
  double diff = 0.0, ref = 0.0;
  for (size_t i = 0; i < n; ++i) {
    diff += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
    ref += (double)b[i] * b[i];
  }
  if (ref == 0.0) return diff == 0.0 ? 0.0 : INFINITY;
  return std::sqrt(diff / ref);
}

}  // namespace ph::test
