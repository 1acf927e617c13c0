// A Hugging Face tokenizer.json's "post_processor": where the special tokens go when a
// text is encoded for a model. TemplateProcessing (Llama, Gemma, T5, BERT as written by
// newer converters), RobertaProcessing, BertProcessing, ByteLevel (adds none: GPT-2,
// Bloom) and a Sequence of them (Llama 3: ByteLevel then TemplateProcessing).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include <nlohmann/json_fwd.hpp>

#include "models/tokenizer/tokenizer.h"

namespace ph::tok {

// The template `spec` describes (null: no special tokens, as Hugging Face adds none
// without a post-processor). `is_token(id)` says whether an id is a token of the file;
// ph::Error naming `file` and the field for an unsupported type, a malformed template or
// a special token that is not a token.
SpecialTokensTemplate make_special_tokens_template(const nlohmann::json& spec,
                                                   const std::string& file,
                                                   const std::function<bool(int64_t)>& is_token);

}  // namespace ph::tok
