#include "models/tokenizer/hf_post_processor.h"

#include <nlohmann/json.hpp>

#include "models/common/error.h"

namespace ph::tok {
namespace {

using json = nlohmann::json;
using Kind = TemplatePiece::Kind;

// What reads one post-processor: the file, the path of the field being read (for errors)
// and the check of token ids.
struct Reader {
  const std::string& file;
  const std::function<bool(int64_t)>& is_token;

  [[noreturn]] void fail(const std::string& field, const std::string& problem) const {
    throw Error(file + ": post_processor" + field + ": " + problem);
  }

  int32_t token(const json& id, const std::string& field) const {
    if (!id.is_number_integer() || !is_token(id.get<int64_t>())) {
      fail(field, "special token id " + id.dump() + " is not a token of the file");
    }
    return id.get<int32_t>();
  }

  int32_t type_id(const json& piece, const std::string& field) const {
    const json& type_id = piece.contains("type_id") ? piece["type_id"] : json(0);
    if (!type_id.is_number_integer() || type_id.get<int64_t>() < 0 ||
        type_id.get<int64_t>() > 255) {
      fail(field, "type_id " + type_id.dump() + " is not a small non-negative integer");
    }
    return type_id.get<int32_t>();
  }

  // ["</s>", 2] of RobertaProcessing and BertProcessing.
  int32_t named_token(const json& spec, const char* key) const {
    const std::string field = std::string(".") + key;
    if (!spec.contains(key) || !spec[key].is_array() || spec[key].size() != 2) {
      fail(field, "is not [token, id]");
    }
    return token(spec[key][1], field);
  }

  // One piece of a TemplateProcessing template: {"Sequence": {"id": "A", "type_id": 0}},
  // {"SpecialToken": {"id": "[CLS]", "type_id": 0}}, or the string forms "$A:0", "[CLS]:0".
  void append_piece(const json& piece, const json& special_tokens, bool pair,
                    const std::string& field, std::vector<TemplatePiece>& out) const {
    if (piece.is_string())
      return append_piece(parse_piece(piece.get<std::string>()), special_tokens, pair, field, out);
    if (piece.is_object() && piece.contains("Sequence")) {
      const json& sequence = piece["Sequence"];
      const std::string id = sequence.is_object() ? sequence.value("id", "") : "";
      if (id != "A" && !(pair && id == "B")) {
        fail(field, "a Sequence must be \"A\"" + std::string(pair ? " or \"B\"" : "") + ", not " +
                        sequence.dump());
      }
      out.push_back({id == "A" ? Kind::kFirst : Kind::kSecond, -1, type_id(sequence, field)});
      return;
    }
    if (piece.is_object() && piece.contains("SpecialToken")) {
      const json& special = piece["SpecialToken"];
      if (!special.is_object() || !special.contains("id") || !special["id"].is_string()) {
        fail(field, "a SpecialToken without an \"id\": " + special.dump());
      }
      const std::string name = special["id"].get<std::string>();
      if (!special_tokens.is_object() || !special_tokens.contains(name)) {
        fail(".special_tokens", "'" + name + "' is used by the template but not listed");
      }
      const json& ids =
          special_tokens[name].is_object() ? special_tokens[name].value("ids", json()) : json();
      if (!ids.is_array() || ids.empty()) {
        fail(".special_tokens." + name, "has no \"ids\" list");
      }
      const int32_t type = type_id(special, field);
      for (const json& id : ids) {
        out.push_back({Kind::kToken, token(id, ".special_tokens." + name), type});
      }
      return;
    }
    fail(field, "a template piece must be a Sequence or a SpecialToken, not " +
                    piece.dump().substr(0, 200));
  }

  // "$A", "$B:1", "[SEP]:1" as the object form.
  static json parse_piece(const std::string& text) {
    std::string name = text;
    json type_id = 0;
    if (const size_t colon = text.rfind(':');
        colon != std::string::npos && colon > 0 && colon + 1 < text.size() &&
        text.find_first_not_of("0123456789", colon + 1) == std::string::npos) {
      name = text.substr(0, colon);
      type_id = std::stoi(text.substr(colon + 1).substr(0, 3));
    }
    if (name == "$" || name == "$A" || name == "$B") {
      return {{"Sequence", {{"id", name == "$B" ? "B" : "A"}, {"type_id", type_id}}}};
    }
    return {{"SpecialToken", {{"id", name}, {"type_id", type_id}}}};
  }

  std::vector<TemplatePiece> template_of(const json& spec, const char* key, bool pair) const {
    const std::string field = std::string(".") + key;
    if (!spec.contains(key) || !spec[key].is_array()) fail(field, "is not a list of pieces");
    std::vector<TemplatePiece> out;
    const json special_tokens = spec.value("special_tokens", json::object());
    for (const json& piece : spec[key]) append_piece(piece, special_tokens, pair, field, out);
    return out;
  }

  // "CLS A SEP" alone, "CLS A SEP (SEP) B SEP" for a pair, B and its SEP of `second_type`.
  SpecialTokensTemplate cls_sep_template(const json& spec, bool double_sep,
                                         int32_t second_type) const {
    const int32_t cls = named_token(spec, "cls"), sep = named_token(spec, "sep");
    SpecialTokensTemplate out;
    out.single = {{Kind::kToken, cls, 0}, {Kind::kFirst, -1, 0}, {Kind::kToken, sep, 0}};
    out.pair = out.single;
    if (double_sep) out.pair.push_back({Kind::kToken, sep, 0});
    out.pair.push_back({Kind::kSecond, -1, second_type});
    out.pair.push_back({Kind::kToken, sep, second_type});
    return out;
  }

  // The template of one processor, or nullopt for one that adds no token (ByteLevel).
  std::optional<SpecialTokensTemplate> read(const json& spec, const std::string& field) const {
    if (!spec.is_object() || !spec.contains("type") || !spec["type"].is_string()) {
      fail(field, "has no \"type\"");
    }
    const std::string type = spec["type"].get<std::string>();
    if (type == "TemplateProcessing") {
      return SpecialTokensTemplate{template_of(spec, "single", false),
                                   template_of(spec, "pair", true)};
    }
    if (type == "RobertaProcessing") {
      // "<s> A </s>" and "<s> A </s> </s> B </s>", every type id 0 (Hugging Face's own
      // comment: "Roberta is weird, and every encoding is type_id=0").
      return cls_sep_template(spec, true, 0);
    }
    if (type == "BertProcessing")
      return cls_sep_template(spec, false, 1);     // "[CLS] A [SEP] B [SEP]"
    if (type == "ByteLevel") return std::nullopt;  // offsets only
    if (type == "Sequence") {
      if (!spec.contains("processors") || !spec["processors"].is_array()) {
        fail(field + ".processors", "is not a list");
      }
      std::optional<SpecialTokensTemplate> found;
      for (size_t i = 0; i < spec["processors"].size(); ++i) {
        const std::string part = field + ".processors[" + std::to_string(i) + "]";
        auto special = read(spec["processors"][i], part);
        if (special && found) fail(part, "a second processor that adds special tokens");
        if (special) found = std::move(special);
      }
      return found;
    }
    fail(field, "unsupported post_processor type '" + type +
                    "' (supported: TemplateProcessing, RobertaProcessing, BertProcessing, "
                    "ByteLevel, Sequence)");
  }
};

SpecialTokensTemplate no_special_tokens() {
  return {{{Kind::kFirst, -1, 0}}, {{Kind::kFirst, -1, 0}, {Kind::kSecond, -1, 1}}};
}

}  // namespace

SpecialTokensTemplate make_special_tokens_template(const json& spec, const std::string& file,
                                                   const std::function<bool(int64_t)>& is_token) {
  if (spec.is_null()) return no_special_tokens();
  const Reader reader{file, is_token};
  return reader.read(spec, "").value_or(no_special_tokens());
}

}  // namespace ph::tok
