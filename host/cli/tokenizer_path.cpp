#include "host/cli/tokenizer_path.h"

#include <filesystem>

#include "models/common/error.h"

namespace ph::cli {

namespace fs = std::filesystem;

std::string tokenizer_path(const std::string& model, const std::string& explicit_path) {
  if (!explicit_path.empty()) return explicit_path;
  if (!fs::exists(model)) throw Error("model path '" + model + "' does not exist");
  if (fs::is_directory(model)) return model;
  const fs::path beside = fs::path(model).parent_path() / "tokenizer.bin";
  if (fs::exists(beside)) return beside.string();
  throw Error("no tokenizer for '" + model + "': --tokenizer was not given and '" +
              beside.string() + "' does not exist");
}

}  // namespace ph::cli
