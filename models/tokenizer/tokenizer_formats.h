// One loader per tokenizer file format; load_tokenizer() picks among them. Each throws
// ph::Error naming the file and the problem.
#pragma once

#include <memory>
#include <string>

#include "models/tokenizer/tokenizer.h"

namespace ph::tok {

// SentencePiece tokenizer.model, through libsentencepiece.
std::unique_ptr<Tokenizer> load_sentencepiece_tokenizer(const std::string& path);
// llama2.c's tokenizer.bin.
std::unique_ptr<Tokenizer> load_llama2c_tokenizer(const std::string& path);
// Hugging Face tokenizer.json with a BPE, WordPiece or Unigram model.
std::unique_ptr<Tokenizer> load_hf_tokenizer(const std::string& path);

}  // namespace ph::tok
