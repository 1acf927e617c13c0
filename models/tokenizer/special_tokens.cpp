// Tokenizer::encode_for_model() and encode_pair(): the texts' ids put into the special
// tokens template, as Hugging Face's post-processors do.
#include "models/tokenizer/tokenizer.h"

namespace ph {
namespace {

// The pieces of `pieces`, with `first` and `second` for the texts; the tokens only with
// `add_special_tokens` (the texts keep the template's type ids without them, as in
// Hugging Face's TemplateProcessing).
Encoding fill(const std::vector<TemplatePiece>& pieces, const std::vector<int32_t>& first,
              const std::vector<int32_t>* second, bool add_special_tokens) {
  Encoding out;
  const auto append = [&](const std::vector<int32_t>& ids, int32_t type_id) {
    out.ids.insert(out.ids.end(), ids.begin(), ids.end());
    out.type_ids.insert(out.type_ids.end(), ids.size(), type_id);
  };
  for (const TemplatePiece& piece : pieces) {
    switch (piece.kind) {
      case TemplatePiece::Kind::kToken:
        if (add_special_tokens) append({piece.id}, piece.type_id);
        break;
      case TemplatePiece::Kind::kFirst:
        append(first, piece.type_id);
        break;
      case TemplatePiece::Kind::kSecond:
        if (second) append(*second, piece.type_id);
        break;
    }
  }
  return out;
}

}  // namespace

Encoding Tokenizer::encode_for_model(std::string_view text, bool add_special_tokens) const {
  return fill(special_tokens_template().single, encode(text), nullptr, add_special_tokens);
}

Encoding Tokenizer::encode_pair(std::string_view first, std::string_view second,
                                bool add_special_tokens) const {
  const std::vector<int32_t> a = encode(first), b = encode(second);
  return fill(special_tokens_template().pair, a, &b, add_special_tokens);
}

SpecialTokensTemplate Tokenizer::special_tokens_template() const {
  using Kind = TemplatePiece::Kind;
  // Llama's convention (its tokenizer.json: "<s>:0 $A:0 <s>:1 $B:1") when there is a BOS,
  // T5's ("$A </s>", "$A </s> $B </s>", type ids all 0) when there is only an EOS.
  if (bos_id() >= 0) {
    return {{{Kind::kToken, bos_id(), 0}, {Kind::kFirst, -1, 0}},
            {{Kind::kToken, bos_id(), 0},
             {Kind::kFirst, -1, 0},
             {Kind::kToken, bos_id(), 1},
             {Kind::kSecond, -1, 1}}};
  }
  if (eos_id() >= 0) {
    return {{{Kind::kFirst, -1, 0}, {Kind::kToken, eos_id(), 0}},
            {{Kind::kFirst, -1, 0},
             {Kind::kToken, eos_id(), 0},
             {Kind::kSecond, -1, 0},
             {Kind::kToken, eos_id(), 0}}};
  }
  return {{{Kind::kFirst, -1, 0}}, {{Kind::kFirst, -1, 0}, {Kind::kSecond, -1, 1}}};
}

}  // namespace ph
