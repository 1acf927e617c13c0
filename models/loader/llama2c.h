// Loading a llama2.c checkpoint (.bin): export.py's legacy version 0, version 1 (float32,
// "ak42" header) and version 2 (int8 Q8_0, dequantised to float32 at load).
#pragma once

#include <string>

#include "models/engine/model.h"

namespace ph {

// Loads a llama2.c checkpoint. q and k rows are permuted from llama2.c's interleaved
// rotary pairs to the rotate_half layout the engine (and transformers) use, so the same
// network gives the same weights whichever file it came from. Throws ph::Error naming the
// file on a bad header, a version it does not read, or a size that does not match the
// header (checked before anything is allocated).
Model load_llama2c(const std::string& path);

}  // namespace ph
