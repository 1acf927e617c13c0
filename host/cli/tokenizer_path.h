// Which tokenizer goes with a model when --tokenizer is not given (train, eval, generate).
#pragma once

#include <string>

#include "models/config/model_config.h"
#include "models/tokenizer/tokenizer.h"

namespace ph::cli {

// --tokenizer if given; else the model folder itself (its tokenizer.json or
// tokenizer.model); else the tokenizer.bin beside a llama2.c .bin checkpoint. Throws
// ph::Error naming the paths when there is none.
std::string tokenizer_path(const std::string& model, const std::string& explicit_path);

// Throws ph::Error when `tokenizer` (may be null: ids only) has more tokens than the
// model's vocabulary: a tokenizer of another model (generate, serve).
void check_tokenizer_fits(const Tokenizer* tokenizer, const ModelConfig& config);

}  // namespace ph::cli
