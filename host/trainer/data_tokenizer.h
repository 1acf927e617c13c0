// The tokenizer a command needs for its data: required for text, optional for token-id
// data (a model folder without a tokenizer file then runs without one).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "host/trainer/dataset.h"
#include "models/tokenizer/tokenizer.h"

namespace ph::trainer {

// Whether every example is token ids ({"input_ids"}: no tokenizer involved).
bool all_token_ids(const std::vector<Example>& examples);

// load_tokenizer(path), except that a model folder holding no tokenizer file gives null
// when `optional` (token-id data). Throws ph::Error as load_tokenizer does otherwise.
std::unique_ptr<Tokenizer> load_data_tokenizer(const std::string& path, bool optional);

}  // namespace ph::trainer
