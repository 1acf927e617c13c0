// `prompthost serve` in process for the server's suites: the demo model with every
// adapter of a DemoAdapters loaded, the real AdapterRegistry and Scheduler behind the
// HTTP API, listening on a free port of 127.0.0.1.
#pragma once

#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "host/serve/completion_service.h"
#include "host/serve/http_server.h"
#include "host/serve/openai_api.h"
#include "serve/demo_adapters.h"
#include "serve/http_test_client.h"

namespace ph::test {

struct ModelServer {
  serve::Metrics metrics;
  std::unique_ptr<serve::CompletionService> service;
  std::unique_ptr<serve::OpenAiApi> api;
  std::unique_ptr<serve::HttpServer> http;

  ModelServer(const DemoAdapters& demo, int max_sequences, int max_queue = 256) {
    serve::SchedulerOptions options;
    options.max_sequences = max_sequences;
    options.max_queue = max_queue;
    options.prefill_chunk = 3;  // prompts prefilled over several steps beside the others
    service =
        serve::make_model_service(demo.model, demo.tokenizer.get(), "demo", {}, options, metrics);
    for (const std::string& name : DemoAdapters::names())
      service->load(name, demo.dir + "/" + name);
    api = std::make_unique<serve::OpenAiApi>(*service, metrics, serve::ApiOptions{});
    serve::HttpServerOptions h;
    h.port = 0;
    http =
        std::make_unique<serve::HttpServer>(h, [this](serve::HttpExchange& e) { api->handle(e); });
  }
  ~ModelServer() {
    http.reset();
    api.reset();
    service.reset();
  }
  int port() const { return http->port(); }
  HttpReply post(const std::string& target, const nlohmann::json& body) {
    return http_call(http->port(), "POST", target, body.dump());
  }
};

}  // namespace ph::test
