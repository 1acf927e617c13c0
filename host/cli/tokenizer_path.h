// Which tokenizer goes with a model when --tokenizer is not given (train, eval, generate).
#pragma once

#include <string>

namespace ph::cli {

// --tokenizer if given; else the model folder itself (its tokenizer.json or
// tokenizer.model); else the tokenizer.bin beside a llama2.c .bin checkpoint. Throws
// ph::Error naming the paths when there is none.
std::string tokenizer_path(const std::string& model, const std::string& explicit_path);

}  // namespace ph::cli
