// SentencePiece tokenizer.model, through libsentencepiece: the model file's own
// normalizer and algorithm (BPE or unigram) apply, exactly as the model was trained with.
// Note that a model's normalizer may not be reversible (the demo model, like most,
// removes extra whitespace), so decode(encode(t)) == t holds only for texts it leaves
// unchanged.
#include <sentencepiece_processor.h>

#include "models/common/error.h"
#include "models/tokenizer/text_util.h"
#include "models/tokenizer/tokenizer_formats.h"

namespace ph::tok {
namespace {

class SentencePieceTokenizer final : public Tokenizer {
 public:
  explicit SentencePieceTokenizer(const std::string& path) : path_(path) {
    const auto status = processor_.Load(path);
    if (!status.ok()) {
      throw Error(path + ": cannot load the SentencePiece model: " + status.ToString());
    }
  }

  std::vector<int32_t> encode(std::string_view text) const override {
    std::vector<int> ids;
    const auto status = processor_.Encode(text, &ids);
    if (!status.ok()) throw Error(path_ + ": SentencePiece encoding failed: " + status.ToString());
    return std::vector<int32_t>(ids.begin(), ids.end());
  }

  std::string decode(const std::vector<int32_t>& ids) const override {
    for (const int32_t id : ids) {
      check_token_id(path_, id, vocab_size());
    }
    // Control pieces (BOS, EOS) decode to nothing in SentencePiece already.
    std::string text;
    const auto status = processor_.Decode(std::vector<int>(ids.begin(), ids.end()), &text);
    if (!status.ok()) throw Error(path_ + ": SentencePiece decoding failed: " + status.ToString());
    return text;
  }

  std::string piece(int32_t id) const override {
    check_token_id(path_, id, vocab_size());
    return processor_.IdToPiece(id);
  }

  int vocab_size() const override { return processor_.GetPieceSize(); }
  int bos_id() const override { return processor_.bos_id(); }
  int eos_id() const override { return processor_.eos_id(); }

 private:
  std::string path_;
  sentencepiece::SentencePieceProcessor processor_;
};

}  // namespace

std::unique_ptr<Tokenizer> load_sentencepiece_tokenizer(const std::string& path) {
  return std::make_unique<SentencePieceTokenizer>(path);
}

}  // namespace ph::tok
