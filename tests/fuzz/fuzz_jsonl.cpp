// Training data: a JSONL file read line by line, each example then encoded with the
// demo's tokenizer into tokens and labels (with a P-tuning style template).
#include "host/trainer/dataset.h"
#include "models/tokenizer/tokenizer.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const auto tokenizer = ph::load_tokenizer(PROMPTHOST_DEMO_TOKENIZER);
  static const auto parts = ph::trainer::parse_template("[P:1] {input} [P:1] {output}", 2);
  const std::string path =
      ph::fuzz::write_file("data.jsonl", {reinterpret_cast<const char*>(data), size});
  ph::fuzz::expect_only_ph_errors([&] {
    for (const auto& example : ph::trainer::read_jsonl(path)) {
      ph::trainer::EncodeOptions options;
      options.max_length = 64;
      ph::fuzz::expect_only_ph_errors(
          [&] { ph::trainer::encode_example(example, *tokenizer, parts, options); });
    }
  });
  return 0;
}
