// The text stages around a Hugging Face tokenizer.json model, as its "normalizer",
// "pre_tokenizer" and "decoder" fields describe them. Only the component types that the
// tokenizers of GPT-2, SmolLM2, Llama, Qwen, Gemma, Bloom, RoBERTa, BERT, T5 and their kin
// use are supported; any other type is refused by name rather than silently skipped,
// since skipping would give wrong ids without a sign.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace ph::tok {

// A piece of text on its way to the BPE model.
struct Split {
  std::string text;
  // Starts at offset 0 of the text being encoded (Metaspace's prepend_scheme "first").
  bool at_text_start = false;
};

// Replaces every split by the non-empty pieces `pieces_of(text)` cuts it into, given as
// [begin, end) byte ranges.
template <typename F>
void split_each(std::vector<Split>& splits, F pieces_of) {
  std::vector<Split> out;
  out.reserve(splits.size());
  for (const Split& split : splits) {
    for (const auto& [begin, end] : pieces_of(split.text)) {
      if (end > begin) {
        out.push_back({split.text.substr(begin, end - begin), split.at_text_start && begin == 0});
      }
    }
  }
  splits = std::move(out);
}

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  virtual void normalize(std::string& text) const = 0;
};

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  // Splits each split further (and may rewrite it, as ByteLevel does).
  virtual void pre_tokenize(std::vector<Split>& splits) const = 0;
};

class Decoder {
 public:
  virtual ~Decoder() = default;
  // Rewrites the token strings of a decode; the result is their concatenation.
  virtual void decode(std::vector<std::string>& tokens) const = 0;
};

// Each returns nullptr for a JSON null (the stage does nothing) and throws ph::Error
// naming `file` for an unsupported or malformed component.
std::unique_ptr<Normalizer> make_normalizer(const nlohmann::json& spec, const std::string& file);
std::unique_ptr<PreTokenizer> make_pre_tokenizer(const nlohmann::json& spec,
                                                 const std::string& file);
std::unique_ptr<Decoder> make_decoder(const nlohmann::json& spec, const std::string& file);

}  // namespace ph::tok
