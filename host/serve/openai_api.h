// The OpenAI-compatible API over a CompletionService: the routes, the API key, the
// completions (whole or streamed as server-sent events), the models, loading and
// unloading adapters, /health and /metrics, and one log line per request.
//
//   POST /v1/completions     GET /v1/models     POST /v1/load_adapter, /v1/unload_adapter
//   GET /health              GET /metrics (Prometheus text)
//
// Errors the OpenAI way: {"error": {"message", "type", "param", "code"}} with 400 (a
// malformed request, named field), 401 (API key), 404 (unknown model or route), 405,
// 413 (body limit, from the HTTP layer), 429 + Retry-After (queue full), 503 (draining).
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <string>

#include "host/serve/api_error.h"
#include "host/serve/completion_request.h"
#include "host/serve/completion_service.h"
#include "host/serve/http_server.h"
#include "host/serve/metrics.h"

namespace ph::serve {

struct ApiOptions {
  std::string api_key;  // empty: no key needed; else /v1/* need "Authorization: Bearer KEY"
  CompletionLimits limits;
  // How often a waiting request looks whether its client is still there.
  std::chrono::milliseconds poll_interval{50};
  int retry_after_seconds = 1;  // the Retry-After of a 429
};

class OpenAiApi {
 public:
  // `log` gets one line per request (no newline); may be empty.
  OpenAiApi(CompletionService& service, Metrics& metrics, ApiOptions options,
            std::function<void(const std::string&)> log = {});
  // The HttpHandler (any connection thread).
  void handle(HttpExchange& exchange);
  // The log line of a request the HTTP layer answered itself (HttpRefusalLog).
  void log_refusal(const std::string& remote, int status, const std::string& why);
  // From now on completions get 503 and /health says "draining".
  void start_draining() { draining_ = true; }

 private:
  struct Outcome;  // what the log line says of a request
  void route(HttpExchange& exchange, Outcome& outcome);
  void completions(HttpExchange& exchange, Outcome& outcome);
  void models(HttpExchange& exchange);
  void load_adapter(HttpExchange& exchange);
  void unload_adapter(HttpExchange& exchange);
  void log_line(const HttpExchange& exchange, const Outcome& outcome, double seconds);

  CompletionService& service_;
  Metrics& metrics_;
  ApiOptions options_;
  std::function<void(const std::string&)> log_;
  std::atomic<bool> draining_{false};
  std::atomic<uint64_t> next_id_{1};
};

// {"error": {...}} of an ApiError.
std::string error_body(const ApiError& error);

}  // namespace ph::serve
