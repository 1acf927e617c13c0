// A Hugging Face config.json: every field the llama and gpt2 families read, and the
// invariants validate_config checks.
#include "models/config/model_config.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path =
      ph::fuzz::write_file("config.json", {reinterpret_cast<const char*>(data), size});
  ph::fuzz::expect_only_ph_errors([&] { ph::parse_hf_config(path); });
  return 0;
}
