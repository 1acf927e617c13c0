// Shared by the plugin runtime's suites: where the test plugins are, and error capture.
#pragma once

#include <catch.hpp>

#include <filesystem>
#include <fstream>
#include <string>

#include "models/common/error.h"
#include "models/config/model_config.h"

#ifndef PROMPTHOST_TEST_PLUGIN_DIR
#error "PROMPTHOST_TEST_PLUGIN_DIR must name the test plugins' folder (tests/CMakeLists.txt)"
#endif

namespace ph::test {

// A two-layer grouped-query llama small enough for plugin tests (random weights).
inline ph::ModelConfig tiny_llama_config() {
  ph::ModelConfig c;
  c.arch = ph::Arch::kLlama;
  c.n_layers = 2;
  c.dim = 16;
  c.n_heads = 2;
  c.n_kv_heads = 1;
  c.head_dim = 8;
  c.ffn_dim = 24;
  c.vocab_size = 32;
  c.max_positions = 32;
  return c;
}

// The file of test plugin `name` (tests/plugins/), e.g. ph_good_prompt.so.
inline std::string test_plugin(const std::string& name) {
  return std::string(PROMPTHOST_TEST_PLUGIN_DIR) + "/ph_" + name + ".so";
}

inline bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// Whether the process has `file` mapped (after dlclose, an unloaded library is not).
inline bool is_mapped(const std::string& file) {
  const std::string canonical = std::filesystem::canonical(file).string();
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line))
    if (line.size() >= canonical.size() &&
        line.compare(line.size() - canonical.size(), canonical.size(), canonical) == 0)
      return true;
  return false;
}

}  // namespace ph::test
