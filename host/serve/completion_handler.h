// One POST /v1/completions from the checked request to the answer: the prompts prepared
// for their model, the context checked, every choice submitted to the scheduler at once,
// then the wait (polling the client, which cancels the sequences when it goes away) and
// the answer, whole or as server-sent events.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "host/serve/completion_request.h"
#include "host/serve/completion_service.h"
#include "host/serve/http_server.h"
#include "host/serve/metrics.h"

namespace ph::serve {

struct CompletionContext {
  CompletionService& service;
  Metrics& metrics;
  std::chrono::milliseconds poll_interval;
  std::string id;  // the completion's "id"
};

// What the request's log line and metrics say.
struct CompletionTally {
  std::string model;  // the adapter's name, or the base model's
  uint64_t prompt_tokens = 0;
  uint64_t completion_tokens = 0;
  bool client_gone = false;  // the answer was abandoned, the sequences cancelled
};

// Answers the request. Throws ApiError before answering (404, 400, 429 with no room in
// the queue, 500 when decoding failed), never after.
void serve_completion(HttpExchange& exchange, const CompletionContext& context,
                      const CompletionRequest& request, CompletionTally& tally);

}  // namespace ph::serve
