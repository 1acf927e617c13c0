#include "models/tokenizer/hf_model.h"

#include <nlohmann/json.hpp>

#include "models/common/error.h"
#include "models/tokenizer/bpe_model.h"
#include "models/tokenizer/text_util.h"
#include "models/tokenizer/unigram_model.h"
#include "models/tokenizer/wordpiece_model.h"

namespace ph::tok {

std::unique_ptr<HfModel> make_hf_model(const nlohmann::json& model, const std::string& file) {
  if (!model.is_object()) throw Error(file + ": model is not an object");
  // Old files name no type; the fields tell (merges: BPE).
  std::string type;
  if (model.contains("type")) {
    if (!model["type"].is_string()) throw Error(file + ": model.type is not a string");
    type = model["type"].get<std::string>();
  } else if (model.contains("merges")) {
    type = "BPE";
  }
  if (type == "BPE") return std::make_unique<BpeModel>(model, file);
  if (type == "WordPiece") return std::make_unique<WordPieceModel>(model, file);
  if (type == "Unigram") return std::make_unique<UnigramModel>(model, file);
  throw Error(file + ": unsupported tokenizer model type '" + type +
              "' in model.type (supported: BPE, WordPiece, Unigram)");
}

std::unordered_map<std::string, int32_t> read_vocab_object(const nlohmann::json& model,
                                                           const std::string& file) {
  const nlohmann::json& vocab = model.at("vocab");
  if (!vocab.is_object()) throw Error(file + ": model.vocab is not an object of token -> id");
  std::unordered_map<std::string, int32_t> out;
  out.reserve(vocab.size());
  for (const auto& [token, id] : vocab.items()) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() > INT32_MAX) {
      throw Error(file + ": model.vocab gives token '" + token + "' the invalid id " + id.dump());
    }
    out.emplace(token, id.get<int32_t>());
  }
  return out;
}

bool append_byte_pieces(const std::string& text,
                        const std::unordered_map<std::string, int32_t>& vocab,
                        std::vector<int32_t>& ids) {
  std::vector<int32_t> bytes;
  for (const char c : text) {
    const auto it = vocab.find(byte_piece_name(static_cast<uint8_t>(c)));
    if (it == vocab.end()) return false;
    bytes.push_back(it->second);
  }
  ids.insert(ids.end(), bytes.begin(), bytes.end());
  return true;
}

std::string optional_string(const nlohmann::json& model, const char* key, const std::string& file) {
  const auto it = model.find(key);
  if (it == model.end() || it->is_null()) return std::string();
  if (!it->is_string()) throw Error(file + ": model." + key + " is not a string");
  return it->get<std::string>();
}

}  // namespace ph::tok
