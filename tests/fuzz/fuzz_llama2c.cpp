// A llama2.c checkpoint (.bin): the header, then weights whose sizes it implies.
#include "models/loader/llama2c.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path =
      ph::fuzz::write_file("model.bin", {reinterpret_cast<const char*>(data), size});
  ph::fuzz::expect_only_ph_errors([&] { ph::load_llama2c(path); });
  return 0;
}
