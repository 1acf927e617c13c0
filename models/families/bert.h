// What bert and roberta share (bert.cpp): the encoder recipe, the config fields both
// read, and the weight layout (embeddings, post-norm layers, the classification head).
// roberta.cpp adds its padding-offset positions and its head's names.
#pragma once

#include <string>

#include "models/families/family.h"

namespace ph {

// The recipe and sizes of a bert-style encoder from config.json: Stacks::kEncoder,
// post-norm LayerNorm layers with biases, learned absolute and token-type positions,
// GELU (set_family's, pad_token_id defaulting to bert's 0 / roberta's 1). Refuses a
// hidden_act or position_embedding_type the engine does not implement, naming the field.
ModelConfig parse_bert_encoder(const ConfigReader& r, Arch arch);

// Loads the encoder under `prefix` ("bert.", "roberta." or "" for a bare BertModel) and,
// for a SEQ_CLS model whose folder holds it, the base model's classification head
// (Model::classifier, the tensors encoder_head.h names) checked against its classes.
void load_bert_encoder(TensorReader& w, Model& m, const std::string& prefix);

// `prefix` ("bert.", "roberta.") when the checkpoint's tensors carry it (saved from
// …ForSequenceClassification or …ForMaskedLM), "" when saved from the bare model.
std::string bert_prefix(const TensorReader& w, const std::string& prefix);

}  // namespace ph
