// POST /v1/completions' body, parsed and checked field by field (OpenAI's legacy
// completions API, as vLLM serves it). Every refusal is an ApiError 400 whose `param`
// names the field and whose message says what is wrong with it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "host/serve/adapter_registry.h"
#include "models/generate/sampler.h"

namespace ph::serve {

struct CompletionLimits {
  int max_choices = 64;  // prompts × n of one request (the scheduler admits them together)
  int max_logprobs = 20;
  int max_stops = 16;
};

struct CompletionRequest {
  std::string model;
  std::string task;                  // a multitask adapter's task (or "model": "NAME:TASK")
  std::vector<PromptInput> prompts;  // a string, strings, ids, or lists of ids
  int max_tokens = 16;               // OpenAI's default
  SamplingOptions sampling;          // temperature 1, top_p 1, top_k 0 (all) by default
  std::optional<uint64_t> seed;      // choice i samples with seed + i; none: a random seed
  std::vector<std::string> stop;     // strings that end a choice (not included in its text)
  int n = 1;                         // choices per prompt
  bool echo = false;                 // the prompt's text before the completion
  int logprobs = -1;                 // -1: none; k: the chosen token's and the top k
  bool stream = false;               // server-sent events
  bool include_usage = false;        // stream_options.include_usage: a last chunk with usage
  bool return_token_ids = false;     // vLLM's: each choice's token_ids and prompt_token_ids
};

// Throws ApiError 400 (malformed JSON, a missing field, a wrong type, a value out of range).
CompletionRequest parse_completion_request(const std::string& body, const CompletionLimits& limits);

}  // namespace ph::serve
