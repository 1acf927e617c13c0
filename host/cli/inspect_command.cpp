// `prompthost inspect PATH`: what an adapter folder, a model folder, a .safetensors file
// or a llama2.c .bin holds: its config and its tensors.
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <string>

#include <nlohmann/json.hpp>

#include "host/cli/commands.h"
#include "host/trainer/run_files.h"
#include "models/common/error.h"
#include "models/engine/model.h"
#include "models/loader/safetensors.h"

namespace ph::cli {

namespace fs = std::filesystem;

namespace {

void print_tensors(const std::string& path) {
  SafetensorsFile f(path);
  std::printf("%s: %zu tensors\n", path.c_str(), f.tensors().size());
  for (const auto& [k, v] : f.metadata()) std::printf("  metadata %s = %s\n", k.c_str(), v.c_str());
  size_t total = 0;
  for (const TensorInfo& t : f.tensors()) {
    std::printf("  %-48s %-5s %s\n", t.name.c_str(), dtype_name(t.dtype),
                shape_string(t.shape).c_str());
    total += t.numel;
  }
  std::printf("  %zu elements in all\n", total);
}

void print_model(const Model& m) {
  const ModelConfig& c = m.config;
  std::printf(
      "model: %s, %d layers, hidden %d, %d heads (%d key/value, head size %d), ffn %d, "
      "vocabulary %d, context %d, %s head\n",
      arch_name(c.arch), c.n_layers, c.dim, c.n_heads, c.n_kv_heads, c.head_dim, c.ffn_dim,
      c.vocab_size, c.max_positions, c.tied_head ? "tied" : "separate");
}

}  // namespace

int inspect_command(int argc, char** argv) {
  if (argc != 2 || std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h") {
    std::FILE* out = argc == 2 ? stdout : stderr;
    std::fprintf(out,
                 "Usage: prompthost inspect PATH\n\n"
                 "Shows what PATH holds: an adapter folder (adapter_config.json and its\n"
                 "tensors), a model folder, a .safetensors file or a llama2.c .bin.\n\n"
                 "Examples:\n  prompthost inspect runs/prefix_tuning\n"
                 "  prompthost inspect models/demo/hf\n  prompthost inspect "
                 "models/demo/fortune-llama.bin\n");
    return argc == 2 ? kExitOk : kExitUsage;
  }
  const std::string path = argv[1];
  try {
    if (fs::is_directory(path) && fs::exists(fs::path(path) / "adapter_config.json")) {
      std::printf("adapter folder %s\n", path.c_str());
      for (const char* name : {"adapter_config.json", "prompthost_adapter.json"}) {
        const fs::path p = fs::path(path) / name;
        if (fs::exists(p))
          std::printf("%s:\n%s\n", name, trainer::read_json(p.string()).dump(2).c_str());
      }
      for (const char* name : {"adapter_model.safetensors", "training_state.safetensors"}) {
        const fs::path p = fs::path(path) / name;
        if (fs::exists(p)) print_tensors(p.string());
      }
      return kExitOk;
    }
    if (fs::is_regular_file(path) && fs::path(path).extension() == ".safetensors") {
      print_tensors(path);
      return kExitOk;
    }
    const Model m = load_model(path);
    print_model(m);
    if (fs::is_directory(path)) {
      for (const auto& e : fs::directory_iterator(path))
        if (e.path().extension() == ".safetensors") print_tensors(e.path().string());
    }
    return kExitOk;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "prompthost inspect: %s\n", e.what());
    return kExitFailure;
  }
}

}  // namespace ph::cli
