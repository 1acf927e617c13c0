// Loading a llama2.c checkpoint (.bin, legacy version 0 format).
#pragma once

#include <string>

#include "models/engine/model.h"

namespace ph {

// Loads a llama2.c checkpoint. q and k rows are permuted from llama2.c's interleaved
// rotary pairs to the rotate_half layout the engine (and transformers) use, so the same
// network gives the same weights whichever file it came from. Throws ph::Error naming the
// file on a bad header or a size that does not match it.
Model load_llama2c(const std::string& path);

}  // namespace ph
