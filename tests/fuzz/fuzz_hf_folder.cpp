// A Hugging Face model folder whose config.json is the input and whose weights are the
// tiny Llama fixture's: every size the config claims must be checked against the
// tensors before anything is allocated from it (-malloc_limit_mb catches a parser that
// allocates first).
#include <filesystem>

#include "models/loader/hf_folder.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string dir = [] {
    const std::string d = ph::fuzz::scratch_dir() + "/model";
    std::filesystem::create_directories(d);
    std::filesystem::copy_file(PROMPTHOST_TINY_LLAMA "/model.safetensors", d + "/model.safetensors",
                               std::filesystem::copy_options::overwrite_existing);
    return d;
  }();
  ph::fuzz::write_file("model/config.json", {reinterpret_cast<const char*>(data), size});
  ph::fuzz::expect_only_ph_errors([&] { ph::load_hf_folder(dir); });
  return 0;
}
