// The tokenizer.json stages that work character by character on Unicode properties, as
// BERT's and SentencePiece-converted (T5) files use them: the BertNormalizer, Lowercase,
// StripAccents and Precompiled normalizers, the BertPreTokenizer and WhitespaceSplit
// pre-tokenizers, and the WordPiece decoder. hf_pipeline.cpp's factories call these.
#pragma once

#include <memory>
#include <string>

#include <nlohmann/json_fwd.hpp>

#include "models/tokenizer/hf_pipeline.h"

namespace ph::tok {

// Each takes the component's JSON object; errors name `file`.
std::unique_ptr<Normalizer> make_bert_normalizer(const nlohmann::json& spec,
                                                 const std::string& file);
std::unique_ptr<Normalizer> make_lowercase_normalizer();
std::unique_ptr<Normalizer> make_strip_accents_normalizer();
std::unique_ptr<Normalizer> make_precompiled_normalizer(const nlohmann::json& spec,
                                                        const std::string& file);
std::unique_ptr<PreTokenizer> make_bert_pre_tokenizer();
std::unique_ptr<PreTokenizer> make_whitespace_split_pre_tokenizer();
std::unique_ptr<Decoder> make_wordpiece_decoder(const nlohmann::json& spec,
                                                const std::string& file);

}  // namespace ph::tok
