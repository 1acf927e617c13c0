// load_tokenizer(): picks the format by file name, or the file in a model folder.
#include <filesystem>

#include "models/common/error.h"
#include "models/tokenizer/tokenizer.h"
#include "models/tokenizer/tokenizer_formats.h"

namespace ph {

namespace fs = std::filesystem;

namespace {

// In a folder, in this order: the Hugging Face file describes the whole pipeline; a
// SentencePiece model its own; llama2.c's file is the least complete.
const char* const kFolderFiles[] = {"tokenizer.json", "tokenizer.model", "tokenizer.bin"};

std::unique_ptr<Tokenizer> load_file(const fs::path& file) {
  const std::string extension = file.extension().string();
  if (extension == ".json") return tok::load_hf_tokenizer(file.string());
  if (extension == ".model") return tok::load_sentencepiece_tokenizer(file.string());
  if (extension == ".bin") return tok::load_llama2c_tokenizer(file.string());
  throw Error(file.string() +
              ": unknown tokenizer format (expected a .json Hugging Face tokenizer, a .model "
              "SentencePiece model or a .bin llama2.c tokenizer)");
}

}  // namespace

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path) {
  std::error_code error;
  const fs::file_status status = fs::status(path, error);
  if (!fs::exists(status)) {
    throw Error(path + ": no such tokenizer file or model folder");
  }
  if (!fs::is_directory(status)) return load_file(path);
  for (const char* name : kFolderFiles) {
    const fs::path candidate = fs::path(path) / name;
    if (fs::is_regular_file(candidate, error)) return load_file(candidate);
  }
  throw Error(path + ": no tokenizer in this folder (looked for tokenizer.json, " +
              "tokenizer.model and tokenizer.bin)");
}

}  // namespace ph
