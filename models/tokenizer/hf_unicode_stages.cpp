#include "models/tokenizer/hf_unicode_stages.h"

#include <utility>

#include <utf8proc.h>
#include <nlohmann/json.hpp>

#include "models/common/error.h"
#include "models/tokenizer/precompiled_charsmap.h"
#include "models/tokenizer/text_util.h"
#include "models/tokenizer/unicode_normalization.h"

namespace ph::tok {
namespace {

using json = nlohmann::json;

// Calls f(begin, length, code_point) for each character of `text` (code_point -1 for a
// byte that is not UTF-8).
template <typename F>
void for_each_char(std::string_view text, F f) {
  for (size_t pos = 0; pos < text.size();) {
    const size_t length = utf8_char_length(text, pos);
    f(pos, length, utf8_decode(text, pos, length));
    pos += length;
  }
}

void append_utf8(int32_t code_point, std::string& out) {
  utf8proc_uint8_t buffer[4];
  const auto length = utf8proc_encode_char(code_point, buffer);
  out.append(reinterpret_cast<const char*>(buffer), static_cast<size_t>(length));
}

utf8proc_category_t category(int32_t c) {
  return utf8proc_category(c);
}

// Rust's char::is_whitespace, and \t \n \r (which Hugging Face's BERT code adds).
bool is_bert_whitespace(int32_t c) {
  return is_unicode_whitespace(c);
}

// BERT's "control" characters: the Unicode categories C* except \t \n \r.
bool is_bert_control(int32_t c) {
  if (c == '\t' || c == '\n' || c == '\r') return false;
  switch (category(c)) {
    case UTF8PROC_CATEGORY_CC:
    case UTF8PROC_CATEGORY_CF:
    case UTF8PROC_CATEGORY_CS:
    case UTF8PROC_CATEGORY_CO:
    case UTF8PROC_CATEGORY_CN:
      return true;
    default:
      return false;
  }
}

// ASCII punctuation (which counts $ + < = > ^ ` | ~, Unicode symbols) or a Unicode P*.
bool is_bert_punctuation(int32_t c) {
  if ((c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) ||
      (c >= 123 && c <= 126)) {
    return true;
  }
  switch (category(c)) {
    case UTF8PROC_CATEGORY_PC:
    case UTF8PROC_CATEGORY_PD:
    case UTF8PROC_CATEGORY_PS:
    case UTF8PROC_CATEGORY_PE:
    case UTF8PROC_CATEGORY_PI:
    case UTF8PROC_CATEGORY_PF:
    case UTF8PROC_CATEGORY_PO:
      return true;
    default:
      return false;
  }
}

// The CJK Unified Ideographs blocks that BERT puts spaces around (not Hiragana, Katakana
// or Hangul, which are written with spaces or split otherwise).
bool is_chinese_char(int32_t c) {
  return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) ||
         (c >= 0x20000 && c <= 0x2A6DF) || (c >= 0x2A700 && c <= 0x2B73F) ||
         (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
         (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

// Rust's char::to_lowercase: utf8proc's simple mapping, and the one unconditional
// multi-character lowercase, U+0130 (İ) -> "i" U+0307.
std::string lowercase(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for_each_char(text, [&](size_t pos, size_t length, int32_t c) {
    if (c < 0) {
      out.append(text.substr(pos, length));
    } else if (c == 0x130) {
      out += "i\xCC\x87";
    } else {
      append_utf8(utf8proc_tolower(c), out);
    }
  });
  return out;
}

// The text without its nonspacing marks (category Mn: the accents NFD splits off).
std::string without_nonspacing_marks(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for_each_char(text, [&](size_t pos, size_t length, int32_t c) {
    if (c < 0 || category(c) != UTF8PROC_CATEGORY_MN) out.append(text.substr(pos, length));
  });
  return out;
}

class BertNormalizer : public Normalizer {
 public:
  BertNormalizer(bool clean_text, bool chinese_chars, bool strip_accents, bool lowercase)
      : clean_text_(clean_text),
        chinese_chars_(chinese_chars),
        strip_accents_(strip_accents),
        lowercase_(lowercase) {}

  // In Hugging Face's order: clean, space out CJK, strip accents (NFD, then no Mn), lower.
  void normalize(std::string& text) const override {
    std::string out;
    out.reserve(text.size());
    for_each_char(text, [&](size_t pos, size_t length, int32_t c) {
      if (clean_text_ && c >= 0) {
        if (c == 0 || c == 0xFFFD || is_bert_control(c)) return;
        if (is_bert_whitespace(c)) {
          out += ' ';
          return;
        }
      }
      if (chinese_chars_ && c >= 0 && is_chinese_char(c)) {
        out += ' ';
        out.append(text, pos, length);
        out += ' ';
        return;
      }
      out.append(text, pos, length);
    });
    if (strip_accents_) {
      out = without_nonspacing_marks(normalize_unicode(out, UnicodeForm::kNFD));
    }
    text = lowercase_ ? lowercase(out) : std::move(out);
  }

 private:
  bool clean_text_, chinese_chars_, strip_accents_, lowercase_;
};

class LowercaseNormalizer : public Normalizer {
 public:
  void normalize(std::string& text) const override { text = lowercase(text); }
};

class StripAccentsNormalizer : public Normalizer {
 public:
  void normalize(std::string& text) const override { text = without_nonspacing_marks(text); }
};

class PrecompiledNormalizer : public Normalizer {
 public:
  explicit PrecompiledNormalizer(PrecompiledCharsMap map) : map_(std::move(map)) {}
  void normalize(std::string& text) const override { text = map_.normalize(text); }

 private:
  PrecompiledCharsMap map_;
};

// Words between whitespace; with `punctuation`, each punctuation character a word too.
std::vector<std::pair<size_t, size_t>> words(const std::string& text, bool punctuation) {
  std::vector<std::pair<size_t, size_t>> out;
  size_t word_begin = 0;
  for_each_char(text, [&](size_t pos, size_t length, int32_t c) {
    const bool space = c >= 0 && is_bert_whitespace(c);
    const bool punct = punctuation && c >= 0 && is_bert_punctuation(c);
    if (space || punct) {
      out.emplace_back(word_begin, pos);
      if (punct) out.emplace_back(pos, pos + length);
      word_begin = pos + length;
    }
  });
  out.emplace_back(word_begin, text.size());
  return out;  // split_each drops the empty ones
}

class WordsPreTokenizer : public PreTokenizer {
 public:
  explicit WordsPreTokenizer(bool punctuation) : punctuation_(punctuation) {}
  void pre_tokenize(std::vector<Split>& splits) const override {
    split_each(splits, [&](const std::string& text) { return words(text, punctuation_); });
  }

 private:
  bool punctuation_;
};

class WordPieceDecoder : public Decoder {
 public:
  WordPieceDecoder(std::string prefix, bool cleanup)
      : prefix_(std::move(prefix)), cleanup_(cleanup) {}

  // Continuation pieces lose their prefix, the others get a space before them; cleanup
  // takes the space back before punctuation and inside English contractions.
  void decode(std::vector<std::string>& tokens) const override {
    for (size_t i = 0; i < tokens.size(); ++i) {
      std::string& token = tokens[i];
      if (i > 0) {
        if (!prefix_.empty() && token.compare(0, prefix_.size(), prefix_) == 0) {
          token.erase(0, prefix_.size());
        } else {
          token.insert(0, " ");
        }
      }
      if (cleanup_) token = clean_up_tokenization(token);
    }
  }

 private:
  static std::string replace_all(std::string text, const std::string& from, const std::string& to) {
    for (size_t pos = text.find(from); pos != std::string::npos;
         pos = text.find(from, pos + to.size())) {
      text.replace(pos, from.size(), to);
    }
    return text;
  }
  // Hugging Face's cleanup, in its order.
  static std::string clean_up_tokenization(std::string text) {
    static const std::pair<const char*, const char*> kRules[] = {
        {" .", "."},   {" ?", "?"},     {" !", "!"},    {" ,", ","},
        {" ' ", "'"},  {" n't", "n't"}, {" 'm", "'m"},  {" do not", " don't"},
        {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}};
    for (const auto& [from, to] : kRules) text = replace_all(std::move(text), from, to);
    return text;
  }

  std::string prefix_;
  bool cleanup_;
};

bool bool_field(const json& spec, const char* key, bool fallback, const std::string& file,
                const char* stage) {
  if (!spec.contains(key) || spec[key].is_null()) return fallback;
  if (!spec[key].is_boolean()) {
    throw Error(file + ": " + stage + "." + key + " is not true, false or null");
  }
  return spec[key].get<bool>();
}

}  // namespace

std::unique_ptr<Normalizer> make_bert_normalizer(const json& spec, const std::string& file) {
  const bool lowercase = bool_field(spec, "lowercase", true, file, "BertNormalizer");
  // strip_accents null: as lowercase says (uncased BERT strips them, cased keeps them).
  return std::make_unique<BertNormalizer>(
      bool_field(spec, "clean_text", true, file, "BertNormalizer"),
      bool_field(spec, "handle_chinese_chars", true, file, "BertNormalizer"),
      bool_field(spec, "strip_accents", lowercase, file, "BertNormalizer"), lowercase);
}

std::unique_ptr<Normalizer> make_lowercase_normalizer() {
  return std::make_unique<LowercaseNormalizer>();
}

std::unique_ptr<Normalizer> make_strip_accents_normalizer() {
  return std::make_unique<StripAccentsNormalizer>();
}

std::unique_ptr<Normalizer> make_precompiled_normalizer(const json& spec, const std::string& file) {
  const std::string where = file + ": normalizer Precompiled";
  if (!spec.contains("precompiled_charsmap") || !spec["precompiled_charsmap"].is_string()) {
    throw Error(where + " has no precompiled_charsmap (base64 text)");
  }
  const std::string charsmap = decode_base64(spec["precompiled_charsmap"].get<std::string>(),
                                             where + ".precompiled_charsmap");
  return std::make_unique<PrecompiledNormalizer>(PrecompiledCharsMap(charsmap, where));
}

std::unique_ptr<PreTokenizer> make_bert_pre_tokenizer() {
  return std::make_unique<WordsPreTokenizer>(true);
}

std::unique_ptr<PreTokenizer> make_whitespace_split_pre_tokenizer() {
  return std::make_unique<WordsPreTokenizer>(false);
}

std::unique_ptr<Decoder> make_wordpiece_decoder(const json& spec, const std::string& file) {
  std::string prefix = "##";
  if (spec.contains("prefix")) {
    if (!spec["prefix"].is_string())
      throw Error(file + ": decoder WordPiece.prefix is not a string");
    prefix = spec["prefix"].get<std::string>();
  }
  return std::make_unique<WordPieceDecoder>(prefix,
                                            bool_field(spec, "cleanup", true, file, "WordPiece"));
}

}  // namespace ph::tok
