#include "host/serve/openai_api.h"

#include <cstdio>
#include <ctime>

#include <nlohmann/json.hpp>

#include "host/serve/api_error.h"
#include "host/serve/completion_handler.h"
#include "models/common/json_file.h"

namespace ph::serve {

namespace {

using json = nlohmann::json;
namespace http = boost::beast::http;

const char kJson[] = "application/json";

std::string path_of(const HttpRequest& request) {
  const std::string target(request.target());
  return target.substr(0, target.find('?'));
}

// The API key check, in time independent of where a wrong key differs.
bool key_matches(const std::string& given, const std::string& key) {
  if (given.size() != key.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < key.size(); ++i) diff |= (unsigned char)(given[i] ^ key[i]);
  return diff == 0;
}

void check_api_key(const HttpRequest& request, const std::string& key) {
  if (key.empty()) return;
  const auto header = request[http::field::authorization];
  const std::string bearer = "Bearer ";
  if (header.empty())
    throw ApiError(401, "missing API key: send the header 'Authorization: Bearer KEY'",
                   "authentication_error", "", "invalid_api_key");
  const std::string given(header);
  if (given.compare(0, bearer.size(), bearer) != 0 ||
      !key_matches(given.substr(bearer.size()), key))
    throw ApiError(401, "incorrect API key", "authentication_error", "", "invalid_api_key");
}

json object_body(const HttpRequest& request) {
  json body;
  try {
    body = parse_json(request.body(), "the request body");
  } catch (const Error& e) {
    throw ApiError(400, e.what());
  }
  if (!body.is_object()) throw ApiError(400, "the request body must be a JSON object");
  return body;
}

// A string field of load/unload's body; vLLM's lora_name/lora_path are accepted too.
std::string name_field(const json& body, const std::string& field, bool required) {
  for (const std::string& key : {field, "lora_" + field}) {
    if (!body.contains(key)) continue;
    const json& v = body[key];
    if (!v.is_string() || v.get<std::string>().empty())
      throw ApiError(400, "'" + key + "' must be a non-empty string", "invalid_request_error", key);
    return v.get<std::string>();
  }
  if (required) throw ApiError(400, "'" + field + "' is required", "invalid_request_error", field);
  return "";
}

json adapter_json(const AdapterSummary& a, const std::string& base) {
  return {{"id", a.name},
          {"object", "model"},
          {"created", (int64_t)std::time(nullptr)},
          {"owned_by", "prompthost"},
          {"root", a.path},
          {"parent", base},
          {"method", a.method},
          {"peft_type", a.peft_type},
          {"num_virtual_tokens", a.num_virtual_tokens},
          {"tasks", a.task_names},
          {"has_template", a.has_template}};
}

std::string utc_now() {
  char text[32];
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return text;
}

}  // namespace

std::string error_body(const ApiError& e) {
  const json error = {{"message", e.what()},
                      {"type", e.type},
                      {"param", e.param.empty() ? json() : json(e.param)},
                      {"code", e.code.empty() ? json() : json(e.code)}};
  return json{{"error", error}}.dump(-1, ' ', false, json::error_handler_t::replace);
}

struct OpenAiApi::Outcome {
  CompletionTally tally;
};

namespace {

// A completion's exchange that counts the request in the metrics just before the
// answer's last bytes go out: a client that reads /metrics once it has its answer
// always finds that answer counted (counting after the write raced with it).
class MeteredExchange final : public HttpExchange {
 public:
  MeteredExchange(HttpExchange& inner, Metrics& metrics, const CompletionTally& tally)
      : inner_(inner), metrics_(metrics), tally_(tally) {}

  const HttpRequest& request() const override { return inner_.request(); }
  const std::string& remote() const override { return inner_.remote(); }
  bool respond(int status, const std::string& content_type, const std::string& body,
               const HttpHeaders& headers) override {
    count(status);
    return inner_.respond(status, content_type, body, headers);
  }
  bool start_stream(int status, const std::string& content_type) override {
    return inner_.start_stream(status, content_type);
  }
  bool send_chunk(const std::string& data) override { return inner_.send_chunk(data); }
  bool end_stream(const std::string& last_data) override {
    count(inner_.status());
    return inner_.end_stream(last_data);
  }
  bool client_gone() override { return inner_.client_gone(); }
  int status() const override { return inner_.status(); }
  size_t bytes_sent() const override { return inner_.bytes_sent(); }

  // For a request that ended without a last write (its client went away: 499).
  void count_if_unanswered() { count(inner_.status()); }

 private:
  void count(int status) {
    if (counted_) return;
    counted_ = true;
    metrics_.count_request(tally_.model.empty() ? "(unknown)" : tally_.model,
                           tally_.client_gone ? 499 : status);
    metrics_.count_tokens(tally_.prompt_tokens, tally_.completion_tokens);
  }

  HttpExchange& inner_;
  Metrics& metrics_;
  const CompletionTally& tally_;
  bool counted_ = false;
};

}  // namespace

OpenAiApi::OpenAiApi(CompletionService& service, Metrics& metrics, ApiOptions options,
                     std::function<void(const std::string&)> log)
    : service_(service), metrics_(metrics), options_(std::move(options)), log_(std::move(log)) {}

void OpenAiApi::handle(HttpExchange& exchange) {
  const auto start = std::chrono::steady_clock::now();
  Outcome outcome;
  const bool completion = path_of(exchange.request()) == "/v1/completions";
  MeteredExchange metered(exchange, metrics_, outcome.tally);
  HttpExchange& answer = completion ? static_cast<HttpExchange&>(metered) : exchange;
  try {
    route(answer, outcome);
  } catch (const ApiError& e) {
    HttpHeaders headers;
    if (e.status == 429)
      headers.emplace_back("Retry-After", std::to_string(options_.retry_after_seconds));
    answer.respond(e.status, kJson, error_body(e), headers);
  } catch (const std::exception& e) {  // a bug or bad_alloc: the request fails, not the server
    answer.respond(500, kJson, error_body(ApiError(500, e.what(), "server_error")));
  } catch (...) {
    answer.respond(500, kJson, error_body(ApiError(500, "unknown exception", "server_error")));
  }
  if (completion) metered.count_if_unanswered();
  log_line(exchange, outcome,
           std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
}

void OpenAiApi::route(HttpExchange& exchange, Outcome& outcome) {
  const HttpRequest& request = exchange.request();
  const std::string path = path_of(request);
  const bool get = request.method() == http::verb::get;
  const bool post = request.method() == http::verb::post;
  if (path == "/health") {
    if (!get) throw ApiError(405, "GET /health", "invalid_request_error");
    const bool ok = !draining_;
    exchange.respond(ok ? 200 : 503, kJson, ok ? R"({"status":"ok"})" : R"({"status":"draining"})");
    return;
  }
  if (path == "/metrics") {
    if (!get) throw ApiError(405, "GET /metrics", "invalid_request_error");
    exchange.respond(200, "text/plain; version=0.0.4; charset=utf-8",
                     metrics_.render(service_.stats()));
    return;
  }
  const bool known = path == "/v1/completions" || path == "/v1/models" ||
                     path == "/v1/load_adapter" || path == "/v1/unload_adapter";
  if (!known)
    throw ApiError(404,
                   "no route " + path +
                       " (the API: POST /v1/completions, GET /v1/models, "
                       "POST /v1/load_adapter, POST /v1/unload_adapter, GET /health, GET /metrics)",
                   "invalid_request_error", "", "not_found");
  check_api_key(request, options_.api_key);
  if (path == "/v1/models") {
    if (!get) throw ApiError(405, "GET /v1/models", "invalid_request_error");
    return models(exchange);
  }
  if (!post) throw ApiError(405, "POST " + path, "invalid_request_error");
  if (path == "/v1/load_adapter") return load_adapter(exchange);
  if (path == "/v1/unload_adapter") return unload_adapter(exchange);
  if (draining_) throw ApiError(503, "the server is shutting down", "server_error", "", "draining");
  const CompletionRequest r = parse_completion_request(request.body(), options_.limits);
  const CompletionContext context{service_, metrics_, options_.poll_interval,
                                  "cmpl-" + std::to_string(next_id_++)};
  serve_completion(exchange, context, r, outcome.tally);
}

void OpenAiApi::models(HttpExchange& exchange) {
  const std::string& base = service_.base_name();
  json data = json::array();
  data.push_back({{"id", base},
                  {"object", "model"},
                  {"created", (int64_t)std::time(nullptr)},
                  {"owned_by", "prompthost"},
                  {"root", base},
                  {"parent", nullptr},
                  {"max_model_len", service_.context_length()}});
  for (const AdapterSummary& a : service_.adapters()) data.push_back(adapter_json(a, base));
  exchange.respond(200, kJson, json{{"object", "list"}, {"data", data}}.dump());
}

void OpenAiApi::load_adapter(HttpExchange& exchange) {
  const json body = object_body(exchange.request());
  const AdapterSummary a =
      service_.load(name_field(body, "name", true), name_field(body, "path", true));
  exchange.respond(200, kJson, adapter_json(a, service_.base_name()).dump());
}

void OpenAiApi::unload_adapter(HttpExchange& exchange) {
  const std::string name = name_field(object_body(exchange.request()), "name", true);
  if (!service_.unload(name))
    throw ApiError(404, "no adapter named '" + name + "' is loaded", "invalid_request_error",
                   "name", "model_not_found");
  exchange.respond(200, kJson, json{{"name", name}, {"unloaded", true}}.dump());
}

void OpenAiApi::log_refusal(const std::string& remote, int status, const std::string& why) {
  if (log_) log_(utc_now() + " " + remote + " - " + std::to_string(status) + " (" + why + ")");
}

void OpenAiApi::log_line(const HttpExchange& exchange, const Outcome& outcome, double seconds) {
  if (!log_) return;
  const HttpRequest& request = exchange.request();
  const CompletionTally& t = outcome.tally;
  char timing[64];
  std::snprintf(timing, sizeof timing, "%.1fms", seconds * 1e3);
  std::string line = utc_now() + " " + exchange.remote() + " \"" +
                     std::string(request.method_string()) + " " + std::string(request.target()) +
                     "\" " + std::to_string(t.client_gone ? 499 : exchange.status()) + " " +
                     std::to_string(exchange.bytes_sent()) + "B " + timing;
  if (!t.model.empty())
    line += " model=" + t.model + " prompt_tokens=" + std::to_string(t.prompt_tokens) +
            " completion_tokens=" + std::to_string(t.completion_tokens);
  if (t.client_gone) line += " (client gone: cancelled)";
  log_(line);
}

}  // namespace ph::serve
