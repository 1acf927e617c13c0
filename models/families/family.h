// A model family: reads its config.json into a ModelConfig (the sizes and the layer recipe
// the engine follows) and its weights into a Model. Adding a family is one file in this
// folder and one line in registry.cpp; nothing in the engine names a family.
#pragma once

#include <string>
#include <vector>

#include "models/config/config_reader.h"
#include "models/config/model_config.h"
#include "models/engine/model.h"
#include "models/loader/tensor_reader.h"

namespace ph {

struct Family {
  const char* name;
  std::vector<std::string> model_types;  // config.json `model_type` values it reads
  // Sizes and recipe from config.json; throws ph::Error naming the file and the field.
  ModelConfig (*parse_config)(const ConfigReader& config, const std::string& model_type);
  // Every weight the recipe needs, checked against the config's shapes.
  void (*load_weights)(TensorReader& weights, Model& model, const std::string& dir);
};

extern const Family kLlamaFamily;
extern const Family kGpt2Family;
extern const Family kBloomFamily;
extern const Family kGemmaFamily;

// Decoders' output head (output_head.cpp): the LM head, tied to the token embedding or the
// tensor lm_head_name; for SEQ_CLS, `score.weight` [num_labels, dim] into Model::classifier
// (and the LM head only when tied). Throws ph::Error naming the tensor.
void load_output_head(TensorReader& weights, Model& model, const std::string& dir,
                      const std::string& lm_head_name);
// The sizes llama's config.json names (hidden_size, intermediate_size, num_attention_heads,
// num_key_value_heads, num_hidden_layers, vocab_size), for the families named like it.
void read_llama_sizes(const ConfigReader& config, ModelConfig& c);
// num_attention_heads divisible by num_key_value_heads (after head_dim is known, so that a
// width that heads do not divide is reported first).
void check_kv_heads(const ConfigReader& config, const ModelConfig& c);
// The llama checkpoint layout (model.embed_tokens, model.layers.*, model.norm, the output
// head), for llama.cpp and the families stored like it. norm_gain reads one RMSNorm gain
// [dim] by tensor name (gemma stores w of (1 + w)).
void load_llama_layout(TensorReader& weights, Model& model, const std::string& dir,
                       const float* (*norm_gain)(TensorReader&, const std::string& name,
                                                 int64_t dim));

// Every family, in the order `supported_model_types` lists them.
const std::vector<const Family*>& all_families();
// The family reading `model_type`; throws ph::Error naming `config_path` and the known types.
const Family& family_of(const std::string& model_type, const std::string& config_path);

}  // namespace ph
