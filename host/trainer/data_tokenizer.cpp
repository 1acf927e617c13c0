#include "host/trainer/data_tokenizer.h"

#include <algorithm>
#include <filesystem>

namespace ph::trainer {

namespace fs = std::filesystem;

bool all_token_ids(const std::vector<Example>& examples) {
  return !examples.empty() &&
         std::all_of(examples.begin(), examples.end(), [](const Example& e) { return e.ids; });
}

std::unique_ptr<Tokenizer> load_data_tokenizer(const std::string& path, bool optional) {
  if (optional && fs::is_directory(path)) {
    bool any = false;
    for (const char* file : {"tokenizer.json", "tokenizer.model", "tokenizer.bin"})
      any = any || fs::exists(fs::path(path) / file);
    if (!any) return nullptr;
  }
  return load_tokenizer(path);
}

}  // namespace ph::trainer
