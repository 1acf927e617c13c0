// RoBERTa: BERT's encoder (bert.h) with fairseq's positions — position p of a text uses
// row padding_idx + 1 + p of the table (padding_idx = pad_token_id), so the usable
// context is max_position_embeddings - padding_idx - 1 — usually one token type, and a
// head without pooler: classifier.dense -> tanh -> classifier.out_proj on h[0].
#include <string>

#include "models/common/error.h"
#include "models/families/bert.h"

namespace ph {

namespace {

ModelConfig parse_roberta(const ConfigReader& r, const std::string&) {
  ModelConfig c = parse_bert_encoder(r, Arch::kRoberta);
  if (c.pad_id < 0)
    throw Error(r.path() + ": field 'pad_token_id' is null; RoBERTa's positions start after it");
  c.position_offset = c.pad_id + 1;
  if (c.max_positions <= c.position_offset) {
    throw Error(
        r.path() + ": field 'max_position_embeddings' (" + std::to_string(c.max_positions) +
        ") leaves no position after padding_idx + 1 = " + std::to_string(c.position_offset) +
        " (pad_token_id " + std::to_string(c.pad_id) + ")");
  }
  c.max_positions -= c.position_offset;  // the context: rows after the offset
  return c;
}

void load_roberta(TensorReader& w, Model& m, const std::string&) {
  load_bert_encoder(w, m, bert_prefix(w, "roberta."));
}

}  // namespace

const Family kRobertaFamily = {"roberta", {"roberta"}, parse_roberta, load_roberta};

}  // namespace ph
