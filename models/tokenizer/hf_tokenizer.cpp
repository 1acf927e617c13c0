// Hugging Face tokenizer.json: byte-level BPE (GPT-2, SmolLM2, Qwen, RoBERTa, Bloom),
// SentencePiece-style BPE with byte fallback (Llama, Gemma), WordPiece (BERT) and Unigram
// (T5). The pipeline is Hugging Face's: added tokens are cut out of the text first, each
// remaining stretch is normalized, pre-tokenized into words, and each word is turned into
// ids by the model; the post-processor's template puts the special tokens around the text
// for a model; decoding runs the token strings through the decoder stages.
#include <algorithm>
#include <array>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "models/common/error.h"
#include "models/common/json_file.h"
#include "models/tokenizer/hf_model.h"
#include "models/tokenizer/hf_pipeline.h"
#include "models/tokenizer/hf_post_processor.h"
#include "models/tokenizer/text_util.h"
#include "models/tokenizer/tokenizer_formats.h"

namespace ph::tok {
namespace {

using json = nlohmann::json;

// Names that special tokens of common model families use for BOS and EOS, in order of
// preference, for files without a tokenizer_config.json that says.
const char* const kBosNames[] = {"<s>",           "<|begin_of_text|>", "<bos>", "<|startoftext|>",
                                 "<|endoftext|>", "<|im_start|>"};
const char* const kEosNames[] = {"</s>",          "<|end_of_text|>", "<eos>",
                                 "<|endoftext|>", "<|im_end|>",      "<|eot_id|>"};

// Ids must be roughly dense: a corrupt id of 2^31 must not allocate a table that size.
constexpr int64_t kMaxIdGap = 65536;

// A token of "added_tokens": matched in the text as a whole before any other processing.
struct AddedToken {
  int32_t id;
  std::string content;
  bool special;  // special tokens produce no text when decoded
  bool lstrip;   // swallows the whitespace before it
  bool rstrip;   // swallows the whitespace after it
};

// What an id stands for.
enum class IdKind : uint8_t { kUnused, kToken, kSpecial };

class HfTokenizer final : public Tokenizer {
 public:
  HfTokenizer(const json& spec, const std::string& path);

  std::vector<int32_t> encode(std::string_view text) const override;
  std::string decode(const std::vector<int32_t>& ids) const override;
  std::string piece(int32_t id) const override {
    check_id(id);
    return id_to_token_[id];
  }
  int vocab_size() const override { return static_cast<int>(id_to_token_.size()); }
  int bos_id() const override { return bos_id_; }
  int eos_id() const override { return eos_id_; }
  SpecialTokensTemplate special_tokens_template() const override { return template_; }

 private:
  // A stretch [begin, end) of the text, or (added >= 0) one added token.
  struct Segment {
    size_t begin, end;
    int32_t added;
  };
  std::vector<Segment> split_on_added_tokens(std::string_view text) const;
  void encode_stretch(std::string_view text, bool at_text_start, std::vector<int32_t>& ids) const;
  void read_special_ids();
  // Throws unless `id` is a token of the file (ids can have gaps).
  void check_id(int32_t id) const {
    if (id < 0 || id >= vocab_size() || id_kind_[id] == IdKind::kUnused) {
      throw unknown_id_error(path_, id, vocab_size());
    }
  }
  int32_t token_id(const std::string& token) const;

  std::string path_;
  std::unique_ptr<HfModel> model_;
  std::unique_ptr<Normalizer> normalizer_;
  std::unique_ptr<PreTokenizer> pre_tokenizer_;
  std::unique_ptr<Decoder> decoder_;
  std::vector<AddedToken> added_;
  // Indices into added_ by the first byte of their content, longest content first.
  std::array<std::vector<size_t>, 256> added_by_first_byte_;
  std::vector<std::string> id_to_token_;
  std::vector<IdKind> id_kind_;
  int bos_id_ = -1;
  int eos_id_ = -1;
  SpecialTokensTemplate template_;
};

HfTokenizer::HfTokenizer(const json& spec, const std::string& path) : path_(path) {
  if (!spec.is_object() || !spec.contains("model")) {
    throw Error(path + ": not a Hugging Face tokenizer.json (no \"model\")");
  }
  model_ = make_hf_model(spec["model"], path);
  normalizer_ = make_normalizer(spec.value("normalizer", json()), path);
  pre_tokenizer_ = make_pre_tokenizer(spec.value("pre_tokenizer", json()), path);
  decoder_ = make_decoder(spec.value("decoder", json()), path);

  for (const json& token : spec.value("added_tokens", json::array())) {
    AddedToken added{token.at("id").get<int32_t>(), token.at("content").get<std::string>(),
                     token.value("special", false), token.value("lstrip", false),
                     token.value("rstrip", false)};
    if (added.id < 0) throw Error(path + ": added token '" + added.content + "' has a negative id");
    // Matched on the raw text whether or not "normalized" is set: the normalizers of
    // the supported families do not change the text of their special tokens. (Hugging
    // Face matches a "normalized" token in the normalized text too, so that under NFKC
    // the full-width "＜|endoftext|＞" is that token; here it is text.)
    if (!added.content.empty()) added_.push_back(std::move(added));
  }
  for (size_t i = 0; i < added_.size(); ++i) {
    added_by_first_byte_[static_cast<unsigned char>(added_[i].content[0])].push_back(i);
  }
  for (auto& candidates : added_by_first_byte_) {
    std::stable_sort(candidates.begin(), candidates.end(), [&](size_t a, size_t b) {
      return added_[a].content.size() > added_[b].content.size();
    });
  }

  // The id -> token table covers the vocabulary and the added tokens (which win).
  int64_t max_id = -1;
  for (const auto& [token, id] : model_->vocab()) max_id = std::max<int64_t>(max_id, id);
  for (const AddedToken& added : added_) max_id = std::max<int64_t>(max_id, added.id);
  const int64_t count = static_cast<int64_t>(model_->vocab().size() + added_.size());
  if (max_id < 0) throw Error(path + ": the vocabulary is empty");
  if (max_id >= count + kMaxIdGap) {
    throw Error(path + ": token id " + std::to_string(max_id) + " is far beyond the " +
                std::to_string(count) + " tokens of the file (corrupt ids?)");
  }
  id_to_token_.resize(max_id + 1);
  id_kind_.assign(max_id + 1, IdKind::kUnused);
  for (const auto& [token, id] : model_->vocab()) {
    // Two tokens with one id: keep the smaller, so the choice does not depend on hashing.
    if (id_kind_[id] == IdKind::kUnused || token < id_to_token_[id]) id_to_token_[id] = token;
    id_kind_[id] = IdKind::kToken;
  }
  for (const AddedToken& added : added_) {
    id_to_token_[added.id] = added.content;
    id_kind_[added.id] = added.special ? IdKind::kSpecial : IdKind::kToken;
  }
  read_special_ids();
  template_ = make_special_tokens_template(
      spec.value("post_processor", json()), path,
      [&](int64_t id) { return id >= 0 && id < vocab_size() && id_kind_[id] != IdKind::kUnused; });
}

int32_t HfTokenizer::token_id(const std::string& token) const {
  for (const AddedToken& added : added_) {
    if (added.content == token) return added.id;
  }
  const auto it = model_->vocab().find(token);
  return it == model_->vocab().end() ? -1 : it->second;
}

void HfTokenizer::read_special_ids() {
  // tokenizer_config.json, when it sits beside the file, says which tokens BOS and EOS
  // are (null: the model has none).
  const auto config_path = std::filesystem::path(path_).parent_path() / "tokenizer_config.json";
  bool bos_known = false, eos_known = false;
  if (std::filesystem::is_regular_file(config_path)) {
    const std::string config_file = config_path.string();
    const json config = parse_json(read_file(config_file, "tokenizer config"), config_file);
    const auto read = [&](const char* key, int& id, bool& known) {
      if (!config.is_object() || !config.contains(key)) return;
      const json& value = config[key];
      known = true;
      if (value.is_null()) return;
      // Either "<s>" or an AddedToken object {"content": "<s>", ...}.
      const json& content = value.is_object() ? value.value("content", json()) : value;
      if (!content.is_string()) {
        throw Error(config_file + ": " + key + " is neither a string nor {\"content\": ...}");
      }
      id = token_id(content.get<std::string>());
      if (id < 0) {
        throw Error(config_file + ": " + key + " '" + content.get<std::string>() +
                    "' is not a token of " + path_);
      }
    };
    read("bos_token", bos_id_, bos_known);
    read("eos_token", eos_id_, eos_known);
  }
  const auto special_named = [&](const auto& names) {
    for (const char* name : names) {
      for (const AddedToken& added : added_) {
        if (added.special && added.content == name) return static_cast<int>(added.id);
      }
    }
    return -1;
  };
  if (!bos_known) bos_id_ = special_named(kBosNames);
  if (!eos_known) eos_id_ = special_named(kEosNames);
}

std::vector<HfTokenizer::Segment> HfTokenizer::split_on_added_tokens(std::string_view text) const {
  std::vector<Segment> segments;
  if (added_.empty()) {
    if (!text.empty()) segments.push_back({0, text.size(), -1});
    return segments;
  }
  const auto whitespace_at = [&](size_t pos, size_t length) {
    return is_unicode_whitespace(utf8_decode(text, pos, length));
  };
  size_t stretch_begin = 0;
  for (size_t pos = 0; pos < text.size();) {
    // Leftmost, then longest, match (candidates are sorted longest first).
    const AddedToken* match = nullptr;
    for (const size_t i : added_by_first_byte_[static_cast<unsigned char>(text[pos])]) {
      if (text.compare(pos, added_[i].content.size(), added_[i].content) == 0) {
        match = &added_[i];
        break;
      }
    }
    if (!match) {
      ++pos;
      continue;
    }
    size_t begin = pos, end = pos + match->content.size();
    if (match->lstrip) {
      while (begin > stretch_begin) {
        size_t previous = begin - 1;  // back to the first byte of the previous character
        while (previous > stretch_begin &&
               (static_cast<unsigned char>(text[previous]) & 0xC0) == 0x80) {
          --previous;
        }
        if (!whitespace_at(previous, begin - previous)) break;
        begin = previous;
      }
    }
    if (match->rstrip) {
      while (end < text.size()) {
        const size_t length = utf8_char_length(text, end);
        if (!whitespace_at(end, length)) break;
        end += length;
      }
    }
    if (begin > stretch_begin) segments.push_back({stretch_begin, begin, -1});
    segments.push_back({begin, end, match->id});
    stretch_begin = pos = end;
  }
  if (stretch_begin < text.size()) segments.push_back({stretch_begin, text.size(), -1});
  return segments;
}

void HfTokenizer::encode_stretch(std::string_view text, bool at_text_start,
                                 std::vector<int32_t>& ids) const {
  std::vector<Split> splits{{std::string(text), at_text_start}};
  if (normalizer_) normalizer_->normalize(splits[0].text);
  if (pre_tokenizer_) pre_tokenizer_->pre_tokenize(splits);
  for (const Split& split : splits) model_->encode_word(split.text, ids);
}

std::vector<int32_t> HfTokenizer::encode(std::string_view text) const {
  std::vector<int32_t> ids;
  for (const Segment& segment : split_on_added_tokens(text)) {
    if (segment.added >= 0) {
      ids.push_back(segment.added);
    } else {
      encode_stretch(text.substr(segment.begin, segment.end - segment.begin), segment.begin == 0,
                     ids);
    }
  }
  return ids;
}

std::string HfTokenizer::decode(const std::vector<int32_t>& ids) const {
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (const int32_t id : ids) {
    check_id(id);
    if (id_kind_[id] != IdKind::kSpecial) tokens.push_back(id_to_token_[id]);
  }
  if (decoder_) decoder_->decode(tokens);
  std::string text;
  for (const std::string& token : tokens) text += token;
  return text;
}

}  // namespace

std::unique_ptr<Tokenizer> load_hf_tokenizer(const std::string& path) {
  const std::string content = read_file(path, "tokenizer.json");
  const json spec = parse_json(content, path);
  try {
    return std::make_unique<HfTokenizer>(spec, path);
  } catch (const json::exception& e) {
    // A field of the wrong type or missing: name the file; the message names the field.
    throw Error(path + ": malformed tokenizer.json: " + e.what());
  }
}

}  // namespace ph::tok
