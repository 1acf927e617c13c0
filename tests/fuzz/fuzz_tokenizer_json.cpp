// A Hugging Face tokenizer.json, then a text encoded (alone, for a model, and as a pair)
// and its ids decoded with it. The input is the file, a NUL, then the text (seeds: small
// real-shaped tokenizers of every model type, normalizer, pre-tokenizer and post-processor).
#include "models/tokenizer/tokenizer.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto parts = ph::fuzz::split_input(data, size, 2);
  const std::string path = ph::fuzz::write_file("tokenizer.json", parts[0]);
  ph::fuzz::expect_only_ph_errors([&] {
    const auto tokenizer = ph::load_tokenizer(path);
    const std::vector<int32_t> ids = tokenizer->encode(parts[1]);
    for (int32_t id : ids) {
      if (id < 0 || id >= tokenizer->vocab_size()) __builtin_trap();
    }
    tokenizer->decode(ids);
    // The post-processor's template: the text alone and cut in two as a pair.
    const ph::Encoding model = tokenizer->encode_for_model(parts[1]);
    const ph::Encoding pair = tokenizer->encode_pair(parts[1].substr(0, parts[1].size() / 2),
                                                     parts[1].substr(parts[1].size() / 2));
    for (const ph::Encoding* encoding : {&model, &pair}) {
      if (encoding->ids.size() != encoding->type_ids.size()) __builtin_trap();
      for (int32_t id : encoding->ids) {
        if (id < 0 || id >= tokenizer->vocab_size()) __builtin_trap();
      }
    }
    // Ids straight from the input bytes, in range or not: decode must refuse or cope.
    std::vector<int32_t> raw;
    for (unsigned char c : parts[1]) raw.push_back(static_cast<int32_t>(c) * 37 - 1000);
    ph::fuzz::expect_only_ph_errors([&] { tokenizer->decode(raw); });
  });
  return 0;
}
