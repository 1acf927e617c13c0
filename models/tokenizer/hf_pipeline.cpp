#include "models/tokenizer/hf_pipeline.h"

#include <algorithm>
#include <string_view>
#include <utility>

#include <nlohmann/json.hpp>

#include "models/common/error.h"
#include "models/tokenizer/byte_level.h"
#include "models/tokenizer/hf_unicode_stages.h"
#include "models/tokenizer/regex.h"
#include "models/tokenizer/text_util.h"
#include "models/tokenizer/unicode_normalization.h"

namespace ph::tok {
namespace {

using json = nlohmann::json;
using Range = std::pair<size_t, size_t>;

// GPT-2's pre-tokenization regex, which ByteLevel applies when use_regex is true.
constexpr const char* kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
constexpr const char* kMetaspace = "\xE2\x96\x81";  // U+2581 "▁", SentencePiece's space

std::string type_of(const json& spec, const std::string& file, const std::string& stage) {
  if (!spec.is_object() || !spec.contains("type") || !spec["type"].is_string()) {
    throw Error(file + ": a " + stage + " without a \"type\": " + spec.dump().substr(0, 200));
  }
  return spec["type"].get<std::string>();
}

[[noreturn]] void unsupported(const std::string& file, const std::string& stage,
                              const std::string& type, const std::string& supported) {
  throw Error(file + ": unsupported " + stage + " type '" + type + "' (supported: " + supported +
              ")");
}

// A "pattern" field: {"String": literal} or {"Regex": pattern}.
class Pattern {
 public:
  static Pattern literal(std::string text) {
    Pattern pattern;
    pattern.literal_ = std::move(text);
    return pattern;
  }

  Pattern(const json& spec, const std::string& file) {
    if (spec.contains("String")) {
      literal_ = spec.at("String").get<std::string>();
    } else if (spec.contains("Regex")) {
      regex_ = std::make_unique<Regex>(spec.at("Regex").get<std::string>(), file);
    } else {
      throw Error(file + ": a pattern must be {\"String\": ...} or {\"Regex\": ...}, not " +
                  spec.dump().substr(0, 200));
    }
  }

  std::vector<Range> find_all(std::string_view text) const {
    if (regex_) return regex_->find_all(text);
    std::vector<Range> matches;
    if (literal_.empty()) return matches;
    for (size_t pos = text.find(literal_); pos != std::string_view::npos;
         pos = text.find(literal_, pos + literal_.size())) {
      matches.emplace_back(pos, pos + literal_.size());
    }
    return matches;
  }

  std::string replace_all(std::string_view text, std::string_view content) const {
    std::string out;
    size_t pos = 0;
    for (const auto& [begin, end] : find_all(text)) {
      out.append(text.substr(pos, begin - pos)).append(content);
      pos = end;
    }
    out.append(text.substr(pos));
    return out;
  }

 private:
  Pattern() = default;

  std::string literal_;
  std::unique_ptr<Regex> regex_;
};

// ---------------------------------------------------------------------------------------
// Normalizers

class SequenceNormalizer : public Normalizer {
 public:
  explicit SequenceNormalizer(std::vector<std::unique_ptr<Normalizer>> parts)
      : parts_(std::move(parts)) {}
  void normalize(std::string& text) const override {
    for (const auto& part : parts_) part->normalize(text);
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> parts_;
};

class PrependNormalizer : public Normalizer {
 public:
  explicit PrependNormalizer(std::string prefix) : prefix_(std::move(prefix)) {}
  // As Hugging Face's: an empty text stays empty.
  void normalize(std::string& text) const override {
    if (!text.empty()) text.insert(0, prefix_);
  }

 private:
  std::string prefix_;
};

class ReplaceNormalizer : public Normalizer {
 public:
  ReplaceNormalizer(Pattern pattern, std::string content)
      : pattern_(std::move(pattern)), content_(std::move(content)) {}
  void normalize(std::string& text) const override { text = pattern_.replace_all(text, content_); }

 private:
  Pattern pattern_;
  std::string content_;
};

class StripNormalizer : public Normalizer {
 public:
  StripNormalizer(bool left, bool right) : left_(left), right_(right) {}
  void normalize(std::string& text) const override {
    size_t begin = 0, end = 0;  // the span from the first to the last non-whitespace char
    bool seen = false;
    for (size_t pos = 0; pos < text.size();) {
      const size_t length = utf8_char_length(text, pos);
      if (!is_unicode_whitespace(utf8_decode(text, pos, length))) {
        if (!seen) begin = pos;
        seen = true;
        end = pos + length;
      }
      pos += length;
    }
    if (!seen) {
      if (left_ || right_) text.clear();
      return;
    }
    text = text.substr(left_ ? begin : 0, (right_ ? end : text.size()) - (left_ ? begin : 0));
  }

 private:
  bool left_, right_;
};

// NFC, NFD, NFKC or NFKD (Qwen2 and Qwen3: NFC).
class UnicodeNormalizer : public Normalizer {
 public:
  explicit UnicodeNormalizer(UnicodeForm form) : form_(form) {}
  void normalize(std::string& text) const override { text = normalize_unicode(text, form_); }

 private:
  UnicodeForm form_;
};

// ---------------------------------------------------------------------------------------
// Pre-tokenizers

// What becomes of the matches of a Split pattern (Hugging Face's SplitDelimiterBehavior).
enum class Behavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

Behavior parse_behavior(const std::string& name, const std::string& file) {
  if (name == "Removed") return Behavior::kRemoved;
  if (name == "Isolated") return Behavior::kIsolated;
  if (name == "MergedWithPrevious") return Behavior::kMergedWithPrevious;
  if (name == "MergedWithNext") return Behavior::kMergedWithNext;
  if (name == "Contiguous") return Behavior::kContiguous;
  throw Error(file + ": unsupported Split behavior '" + name + "'");
}

// The pieces a text of `length` bytes splits into around `matches`, following Hugging
// Face's NormalizedString::split so that the same text gives the same pieces.
std::vector<Range> split_ranges(size_t length, const std::vector<Range>& matches, Behavior behavior,
                                bool invert) {
  struct Part {
    size_t begin, end;
    bool is_match;
  };
  std::vector<Part> parts;
  size_t pos = 0;
  for (const auto& [begin, end] : matches) {
    if (begin > pos) parts.push_back({pos, begin, invert});
    parts.push_back({begin, end, !invert});
    pos = end;
  }
  if (pos < length) parts.push_back({pos, length, invert});

  std::vector<Range> out;
  bool previous_match = false;
  switch (behavior) {
    case Behavior::kRemoved:
      for (const Part& p : parts) {
        if (!p.is_match) out.emplace_back(p.begin, p.end);
      }
      break;
    case Behavior::kIsolated:
      for (const Part& p : parts) out.emplace_back(p.begin, p.end);
      break;
    case Behavior::kMergedWithPrevious:
      for (const Part& p : parts) {
        if (p.is_match && !previous_match && !out.empty()) {
          out.back().second = p.end;
        } else {
          out.emplace_back(p.begin, p.end);
        }
        previous_match = p.is_match;
      }
      break;
    case Behavior::kMergedWithNext:
      for (auto it = parts.rbegin(); it != parts.rend(); ++it) {
        if (it->is_match && !previous_match && !out.empty()) {
          out.back().first = it->begin;
        } else {
          out.emplace_back(it->begin, it->end);
        }
        previous_match = it->is_match;
      }
      std::reverse(out.begin(), out.end());
      break;
    case Behavior::kContiguous:
      for (size_t i = 0; i < parts.size(); ++i) {
        if (i > 0 && parts[i].is_match == previous_match) {
          out.back().second = parts[i].end;
        } else {
          out.emplace_back(parts[i].begin, parts[i].end);
        }
        previous_match = parts[i].is_match;
      }
      break;
  }
  return out;
}

class SequencePreTokenizer : public PreTokenizer {
 public:
  explicit SequencePreTokenizer(std::vector<std::unique_ptr<PreTokenizer>> parts)
      : parts_(std::move(parts)) {}
  void pre_tokenize(std::vector<Split>& splits) const override {
    for (const auto& part : parts_) part->pre_tokenize(splits);
  }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> parts_;
};

class SplitPreTokenizer : public PreTokenizer {
 public:
  SplitPreTokenizer(Pattern pattern, Behavior behavior, bool invert)
      : pattern_(std::move(pattern)), behavior_(behavior), invert_(invert) {}
  void pre_tokenize(std::vector<Split>& splits) const override {
    split_each(splits, [&](const std::string& text) {
      return split_ranges(text.size(), pattern_.find_all(text), behavior_, invert_);
    });
  }

 private:
  Pattern pattern_;
  Behavior behavior_;
  bool invert_;
};

class ByteLevelPreTokenizer : public PreTokenizer {
 public:
  ByteLevelPreTokenizer(bool add_prefix_space, bool use_regex, const std::string& file)
      : add_prefix_space_(add_prefix_space) {
    if (use_regex) regex_ = std::make_unique<Regex>(kGpt2Pattern, file + ": ByteLevel");
  }
  void pre_tokenize(std::vector<Split>& splits) const override {
    if (add_prefix_space_) {
      for (Split& split : splits) {
        if (split.text.empty() || split.text[0] != ' ') split.text.insert(0, " ");
      }
    }
    if (regex_) {
      split_each(splits, [&](const std::string& text) {
        return split_ranges(text.size(), regex_->find_all(text), Behavior::kIsolated, false);
      });
    }
    // From here on the vocabulary's spelling: one visible character per byte.
    for (Split& split : splits) split.text = byte_level_encode(split.text);
  }

 private:
  bool add_prefix_space_;
  std::unique_ptr<Regex> regex_;
};

class DigitsPreTokenizer : public PreTokenizer {
 public:
  DigitsPreTokenizer(bool individual, const std::string& file)
      : digit_(R"(\p{N})", file + ": Digits"),
        behavior_(individual ? Behavior::kIsolated : Behavior::kContiguous) {}
  void pre_tokenize(std::vector<Split>& splits) const override {
    split_each(splits, [&](const std::string& text) {
      return split_ranges(text.size(), digit_.find_all(text), behavior_, false);
    });
  }

 private:
  Regex digit_;
  Behavior behavior_;
};

// When a Metaspace stage puts the replacement character before a text.
enum class PrependScheme { kAlways, kFirst, kNever };

PrependScheme parse_prepend_scheme(const json& spec, const std::string& file) {
  if (spec.contains("prepend_scheme") && spec["prepend_scheme"].is_string()) {
    const auto name = spec["prepend_scheme"].get<std::string>();
    if (name == "always") return PrependScheme::kAlways;
    if (name == "first") return PrependScheme::kFirst;
    if (name == "never") return PrependScheme::kNever;
    throw Error(file + ": unsupported Metaspace prepend_scheme '" + name + "'");
  }
  // Files written before prepend_scheme existed say add_prefix_space.
  return spec.value("add_prefix_space", true) ? PrependScheme::kAlways : PrependScheme::kNever;
}

class MetaspacePreTokenizer : public PreTokenizer {
 public:
  MetaspacePreTokenizer(std::string replacement, PrependScheme scheme, bool split)
      : replacement_(std::move(replacement)),
        space_(Pattern::literal(" ")),
        marker_(Pattern::literal(replacement_)),
        scheme_(scheme),
        split_(split) {}
  void pre_tokenize(std::vector<Split>& splits) const override {
    for (Split& split : splits) {
      split.text = space_.replace_all(split.text, replacement_);
      // As Hugging Face's: nothing is put before an empty split (a stretch between two
      // added tokens that the normalizer emptied: T5's " " in "</s> <pad>").
      const bool prepend =
          !split.text.empty() && (scheme_ == PrependScheme::kAlways ||
                                  (scheme_ == PrependScheme::kFirst && split.at_text_start));
      if (prepend && split.text.compare(0, replacement_.size(), replacement_) != 0) {
        split.text.insert(0, replacement_);
      }
    }
    if (split_) {
      split_each(splits, [&](const std::string& text) {
        return split_ranges(text.size(), marker_.find_all(text), Behavior::kMergedWithNext, false);
      });
    }
  }

 private:
  std::string replacement_;
  Pattern space_, marker_;
  PrependScheme scheme_;
  bool split_;
};

// ---------------------------------------------------------------------------------------
// Decoders

class SequenceDecoder : public Decoder {
 public:
  explicit SequenceDecoder(std::vector<std::unique_ptr<Decoder>> parts)
      : parts_(std::move(parts)) {}
  void decode(std::vector<std::string>& tokens) const override {
    for (const auto& part : parts_) part->decode(tokens);
  }

 private:
  std::vector<std::unique_ptr<Decoder>> parts_;
};

class ByteLevelDecoder : public Decoder {
 public:
  void decode(std::vector<std::string>& tokens) const override {
    std::string bytes;
    for (const std::string& token : tokens) {
      // A token that is not byte-level text (an added token such as "<|im_start|>" can
      // hold other characters) stands for its own UTF-8, as in Hugging Face's decoder.
      const auto decoded = byte_level_decode(token);
      bytes += decoded ? *decoded : token;
    }
    tokens.assign(1, std::move(bytes));
  }
};

class MetaspaceDecoder : public Decoder {
 public:
  MetaspaceDecoder(std::string replacement, PrependScheme scheme)
      : replacement_(std::move(replacement)),
        marker_(Pattern::literal(replacement_)),
        scheme_(scheme) {}
  // Drops the replacement character that encoding prepended: the first one of the first
  // token. (Hugging Face drops every replacement character of the first token; the two
  // differ only for a first token with inner ones, which split pre-tokenization never
  // produces, and then this one keeps the text's spaces.)
  void decode(std::vector<std::string>& tokens) const override {
    for (size_t i = 0; i < tokens.size(); ++i) {
      std::string& token = tokens[i];
      if (i == 0 && scheme_ != PrependScheme::kNever &&
          token.compare(0, replacement_.size(), replacement_) == 0) {
        token.erase(0, replacement_.size());
      }
      token = marker_.replace_all(token, " ");
    }
  }

 private:
  std::string replacement_;
  Pattern marker_;
  PrependScheme scheme_;
};

class ReplaceDecoder : public Decoder {
 public:
  ReplaceDecoder(Pattern pattern, std::string content)
      : pattern_(std::move(pattern)), content_(std::move(content)) {}
  void decode(std::vector<std::string>& tokens) const override {
    for (std::string& token : tokens) token = pattern_.replace_all(token, content_);
  }

 private:
  Pattern pattern_;
  std::string content_;
};

class ByteFallbackDecoder : public Decoder {
 public:
  // Runs of <0xXX> tokens become one token of those raw bytes. (Hugging Face turns bytes
  // that are not valid UTF-8 into U+FFFD; raw bytes keep a stream decoded piece by
  // piece exact once the pieces are joined.)
  void decode(std::vector<std::string>& tokens) const override {
    std::vector<std::string> out;
    bool previous_was_byte = false;
    for (std::string& token : tokens) {
      const auto byte = parse_byte_piece(token);
      if (byte && previous_was_byte) {
        out.back() += static_cast<char>(*byte);
      } else if (byte) {
        out.emplace_back(1, static_cast<char>(*byte));
      } else {
        out.push_back(std::move(token));
      }
      previous_was_byte = byte.has_value();
    }
    tokens = std::move(out);
  }
};

class FuseDecoder : public Decoder {
 public:
  void decode(std::vector<std::string>& tokens) const override {
    std::string joined;
    for (const std::string& token : tokens) joined += token;
    tokens.assign(1, std::move(joined));
  }
};

class StripDecoder : public Decoder {
 public:
  StripDecoder(std::string content, size_t start, size_t stop)
      : content_(std::move(content)), start_(start), stop_(stop) {}
  // Up to start_ leading and stop_ trailing `content` characters off every token.
  void decode(std::vector<std::string>& tokens) const override {
    if (content_.empty()) return;
    const size_t n = content_.size();
    for (std::string& token : tokens) {
      size_t begin = 0, end = token.size();
      for (size_t i = 0; i < start_ && end - begin >= n && token.compare(begin, n, content_) == 0;
           ++i) {
        begin += n;
      }
      for (size_t i = 0; i < stop_ && end - begin >= n && token.compare(end - n, n, content_) == 0;
           ++i) {
        end -= n;
      }
      token = token.substr(begin, end - begin);
    }
  }

 private:
  std::string content_;
  size_t start_, stop_;
};

template <typename Stage, typename Make>
std::vector<std::unique_ptr<Stage>> make_all(const json& list, Make make) {
  std::vector<std::unique_ptr<Stage>> parts;
  for (const json& spec : list) {
    if (auto part = make(spec)) parts.push_back(std::move(part));
  }
  return parts;
}

}  // namespace

std::unique_ptr<Normalizer> make_normalizer(const json& spec, const std::string& file) {
  if (spec.is_null()) return nullptr;
  const std::string type = type_of(spec, file, "normalizer");
  if (type == "Sequence") {
    return std::make_unique<SequenceNormalizer>(make_all<Normalizer>(
        spec.at("normalizers"), [&](const json& part) { return make_normalizer(part, file); }));
  }
  if (type == "Prepend")
    return std::make_unique<PrependNormalizer>(spec.at("prepend").get<std::string>());
  if (type == "Replace") {
    return std::make_unique<ReplaceNormalizer>(Pattern(spec.at("pattern"), file),
                                               spec.at("content").get<std::string>());
  }
  if (type == "Strip") {
    return std::make_unique<StripNormalizer>(spec.value("strip_left", true),
                                             spec.value("strip_right", true));
  }
  if (type == "NFC") return std::make_unique<UnicodeNormalizer>(UnicodeForm::kNFC);
  if (type == "NFD") return std::make_unique<UnicodeNormalizer>(UnicodeForm::kNFD);
  if (type == "NFKC") return std::make_unique<UnicodeNormalizer>(UnicodeForm::kNFKC);
  if (type == "NFKD") return std::make_unique<UnicodeNormalizer>(UnicodeForm::kNFKD);
  if (type == "BertNormalizer") return make_bert_normalizer(spec, file);
  if (type == "Lowercase") return make_lowercase_normalizer();
  if (type == "StripAccents") return make_strip_accents_normalizer();
  if (type == "Precompiled") return make_precompiled_normalizer(spec, file);
  unsupported(file, "normalizer", type,
              "Sequence, Prepend, Replace, Strip, NFC, NFD, NFKC, NFKD, BertNormalizer, "
              "Lowercase, StripAccents, Precompiled");
}

std::unique_ptr<PreTokenizer> make_pre_tokenizer(const json& spec, const std::string& file) {
  if (spec.is_null()) return nullptr;
  const std::string type = type_of(spec, file, "pre_tokenizer");
  if (type == "Sequence") {
    return std::make_unique<SequencePreTokenizer>(
        make_all<PreTokenizer>(spec.at("pretokenizers"),
                               [&](const json& part) { return make_pre_tokenizer(part, file); }));
  }
  if (type == "ByteLevel") {
    return std::make_unique<ByteLevelPreTokenizer>(spec.value("add_prefix_space", true),
                                                   spec.value("use_regex", true), file);
  }
  if (type == "Split") {
    return std::make_unique<SplitPreTokenizer>(
        Pattern(spec.at("pattern"), file),
        parse_behavior(spec.at("behavior").get<std::string>(), file), spec.value("invert", false));
  }
  if (type == "Digits") {
    return std::make_unique<DigitsPreTokenizer>(spec.value("individual_digits", false), file);
  }
  if (type == "Metaspace") {
    return std::make_unique<MetaspacePreTokenizer>(spec.value("replacement", kMetaspace),
                                                   parse_prepend_scheme(spec, file),
                                                   spec.value("split", true));
  }
  if (type == "BertPreTokenizer") return make_bert_pre_tokenizer();
  if (type == "WhitespaceSplit") return make_whitespace_split_pre_tokenizer();
  unsupported(file, "pre_tokenizer", type,
              "Sequence, ByteLevel, Split, Digits, Metaspace, BertPreTokenizer, WhitespaceSplit");
}

std::unique_ptr<Decoder> make_decoder(const json& spec, const std::string& file) {
  if (spec.is_null()) return nullptr;
  const std::string type = type_of(spec, file, "decoder");
  if (type == "Sequence") {
    return std::make_unique<SequenceDecoder>(make_all<Decoder>(
        spec.at("decoders"), [&](const json& part) { return make_decoder(part, file); }));
  }
  if (type == "ByteLevel") return std::make_unique<ByteLevelDecoder>();
  if (type == "Metaspace") {
    return std::make_unique<MetaspaceDecoder>(spec.value("replacement", kMetaspace),
                                              parse_prepend_scheme(spec, file));
  }
  if (type == "Replace") {
    return std::make_unique<ReplaceDecoder>(Pattern(spec.at("pattern"), file),
                                            spec.at("content").get<std::string>());
  }
  if (type == "ByteFallback") return std::make_unique<ByteFallbackDecoder>();
  if (type == "Fuse") return std::make_unique<FuseDecoder>();
  if (type == "Strip") {
    return std::make_unique<StripDecoder>(spec.at("content").get<std::string>(),
                                          spec.value("start", size_t{0}),
                                          spec.value("stop", size_t{0}));
  }
  if (type == "WordPiece") return make_wordpiece_decoder(spec, file);
  unsupported(file, "decoder", type,
              "Sequence, ByteLevel, Metaspace, Replace, ByteFallback, Fuse, Strip, WordPiece");
}

}  // namespace ph::tok
