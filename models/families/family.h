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
extern const Family kT5Family;

// Every family, in the order `supported_model_types` lists them.
const std::vector<const Family*>& all_families();
// The family reading `model_type`; throws ph::Error naming `config_path` and the known types.
const Family& family_of(const std::string& model_type, const std::string& config_path);

}  // namespace ph
