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

void check_tokenizer_fits(const Tokenizer* tokenizer, const ModelConfig& config) {
  if (tokenizer && tokenizer->vocab_size() > config.vocab_size)
    throw Error("the tokenizer has " + std::to_string(tokenizer->vocab_size()) +
                " tokens but the model only " + std::to_string(config.vocab_size) +
                ": they do not belong together");
}

}  // namespace ph::cli
