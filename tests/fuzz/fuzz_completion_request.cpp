// The server's POST /v1/completions body (host/serve/completion_request.cpp): any bytes
// are parsed into a request or refused with an ApiError 400; an accepted request stays
// within the limits it was parsed under.
#include "host/serve/api_error.h"
#include "host/serve/completion_request.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const ph::serve::CompletionLimits limits;
  const std::string body(reinterpret_cast<const char*>(data), size);
  try {
    const ph::serve::CompletionRequest r = ph::serve::parse_completion_request(body, limits);
    const size_t choices = r.prompts.size() * (size_t)r.n;
    if (r.prompts.empty() || r.n < 1 || choices > (size_t)limits.max_choices ||
        r.logprobs > limits.max_logprobs || r.stop.size() > (size_t)limits.max_stops ||
        r.max_tokens < 0)
      __builtin_trap();  // accepted but outside the limits
  } catch (const ph::serve::ApiError& e) {
    if (e.status != 400 || std::string_view(e.what()).empty()) __builtin_trap();
  }
  return 0;
}
