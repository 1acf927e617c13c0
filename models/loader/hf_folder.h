// Loading a Hugging Face model folder: config.json plus model.safetensors or a sharded
// model.safetensors.index.json.
#pragma once

#include <string>

#include "models/engine/model.h"

namespace ph {

// Loads `dir`. `weights_file`, when not empty, names the one safetensors file to read
// instead of model.safetensors / the index. Throws ph::Error naming the file, tensor or
// config field on any problem (missing tensor, wrong shape or dtype, missing shard, ...).
Model load_hf_folder(const std::string& dir, const std::string& weights_file = "");

}  // namespace ph
