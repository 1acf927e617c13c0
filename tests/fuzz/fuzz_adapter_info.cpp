// An adapter folder's JSON files: adapter_config.json (PEFT's), then a NUL, then
// prompthost_adapter.json (empty: a PEFT-made folder without it), read as
// `generate --adapter` and `inspect` read them.
#include <filesystem>

#include "host/trainer/adapter_files.h"
#include "host/trainer/adapter_loading.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto parts = ph::fuzz::split_input(data, size, 2);
  const std::string dir = ph::fuzz::scratch_dir() + "/adapter";
  std::filesystem::create_directories(dir);
  ph::fuzz::write_file("adapter/adapter_config.json", parts[0]);
  const std::string info = dir + "/prompthost_adapter.json";
  if (parts[1].empty()) {
    std::filesystem::remove(info);
  } else {
    ph::fuzz::write_file("adapter/prompthost_adapter.json", parts[1]);
  }
  ph::fuzz::expect_only_ph_errors([&] {
    const ph::trainer::AdapterInfo adapter = ph::trainer::read_adapter_info(dir);
    ph::trainer::adapter_base_model(adapter);
    adapter.peft_config.dump(2);
  });
  return 0;
}
