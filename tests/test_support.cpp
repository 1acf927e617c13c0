#include "test_support.h"

#include "models/engine/engine.h"
#include "models/engine/model.h"

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

namespace {

template <class T>
double relative_l2_of(const T* a, const T* b, size_t n) {
  double diff = 0.0, ref = 0.0;
  for (size_t i = 0; i < n; ++i) {
    diff += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
    ref += (double)b[i] * b[i];
  }
  if (ref == 0.0) return diff == 0.0 ? 0.0 : INFINITY;
  return std::sqrt(diff / ref);
}

}  // namespace

double relative_l2(const float* a, const float* b, size_t n) {
  return relative_l2_of(a, b, n);
}
double relative_l2(const double* a, const double* b, size_t n) {
  return relative_l2_of(a, b, n);
}

}  // namespace ph::test

namespace ph::test {

xt::xtensor<float, 5> prefix_from_flat(const float* flat, int n, int L, int G, int hd) {
  xt::xtensor<float, 5> p = xt::zeros<float>({L, 2, G, n, hd});
  for (int j = 0; j < n; ++j)
    for (int l = 0; l < L; ++l)
      for (int kv = 0; kv < 2; ++kv)
        for (int g = 0; g < G; ++g)
          for (int i = 0; i < hd; ++i)
            p(l, kv, g, j, i) = flat[(size_t)j * L * 2 * G * hd + ((2 * l + kv) * G + g) * hd + i];
  return p;
}

std::vector<float> prefix_to_flat(const xt::xtensor<float, 5>& p) {
  const size_t L = p.shape(0), G = p.shape(2), n = p.shape(3), hd = p.shape(4);
  std::vector<float> flat(p.size());
  for (size_t j = 0; j < n; ++j)
    for (size_t l = 0; l < L; ++l)
      for (size_t kv = 0; kv < 2; ++kv)
        for (size_t g = 0; g < G; ++g)
          for (size_t i = 0; i < hd; ++i)
            flat[j * L * 2 * G * hd + ((2 * l + kv) * G + g) * hd + i] = p(l, kv, g, j, i);
  return flat;
}

}  // namespace ph::test

#include <exception>

namespace ph::test {

std::string error_message(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace ph::test

namespace ph::test {

std::vector<float> kv_cache_prefix(const ph::Model& model, const std::vector<int32_t>& tokens) {
  const ph::ModelConfig& c = model.config;
  ph::KVCache cache = ph::make_kv_cache(model, (int)tokens.size());
  ph::extend(model, cache, tokens);
  std::vector<float> out;
  for (int l = 0; l < c.n_layers; ++l)
    for (int kv = 0; kv < 2; ++kv)
      for (int g = 0; g < c.n_kv_heads; ++g)
        for (size_t j = 0; j < tokens.size(); ++j)
          for (int d = 0; d < c.head_dim; ++d)
            out.push_back(kv == 0 ? cache.keys[l](g, j, d) : cache.values[l](g, j, d));
  return out;
}

}  // namespace ph::test
