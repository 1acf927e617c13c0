// llama2.c's tokenizer.bin, then a text encoded and decoded with it. The input is the
// text, a NUL, then the file (binary, so it may hold NULs itself).
#include "models/tokenizer/tokenizer.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto parts = ph::fuzz::split_input(data, size, 2);
  const std::string_view text = parts[0];
  const std::string path = ph::fuzz::write_file("tokenizer.bin", parts[1]);
  ph::fuzz::expect_only_ph_errors([&] {
    const auto tokenizer = ph::load_tokenizer(path);
    const std::vector<int32_t> ids = tokenizer->encode(text);
    for (int32_t id : ids) {
      if (id < 0 || id >= tokenizer->vocab_size()) __builtin_trap();
    }
    tokenizer->decode(ids);
  });
  return 0;
}
