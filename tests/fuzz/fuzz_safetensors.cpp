// A safetensors file: the header (lengths, offsets, shapes, dtypes, metadata) and every
// tensor read back as float32 or int64.
#include "models/loader/safetensors.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path =
      ph::fuzz::write_file("model.safetensors", {reinterpret_cast<const char*>(data), size});
  ph::fuzz::expect_only_ph_errors([&] {
    const ph::SafetensorsFile file(path);
    for (const ph::TensorInfo& tensor : file.tensors()) {
      ph::fuzz::expect_only_ph_errors([&] {
        const ph::FloatTensor t = file.to_float(tensor);
        volatile float sink = t.numel ? t.data[t.numel - 1] : 0.0f;
        (void)sink;
      });
      ph::fuzz::expect_only_ph_errors([&] { file.to_int64(tensor.name); });
    }
  });
  return 0;
}
