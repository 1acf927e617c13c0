// The HTTP server and the OpenAI-compatible API, over real HTTP on 127.0.0.1 (port 0):
// completions whole and streamed (SSE framing), stop strings, n, seeds, echo, logprobs,
// usage, every error case (400 naming the field, 401, 404, 405, 413, 429 + Retry-After,
// 503 while draining), client disconnects cancelling their sequences, /v1/models,
// load/unload, /health, /metrics. The model side is a ScriptedService (no model): what
// is tested here is the API; tests/unit/test_serve_model.cpp runs the real scheduler.
#include <catch.hpp>

#include <cmath>
#include <memory>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "host/serve/http_server.h"
#include "host/serve/metrics.h"
#include "host/serve/openai_api.h"
#include "serve/http_test_client.h"
#include "serve/scripted_service.h"
#include "test_support.h"

namespace {

using json = nlohmann::json;
using ph::test::http_call;
using ph::test::HttpReply;
using ph::test::sse_events;

const char kScript[] = " one two three four five six seven eight nine ten eleven twelve";

const ph::Tokenizer& demo_tokenizer() {
  static const std::unique_ptr<ph::Tokenizer> t =
      ph::load_tokenizer(ph::test::source_path("models/demo/hf/tokenizer.model"));
  return *t;
}

// The API over a ScriptedService, listening on a free port of 127.0.0.1.
struct TestServer {
  explicit TestServer(ph::serve::ApiOptions api = {}, size_t max_body = 4096,
                      int max_connections = 64)
      : service(demo_tokenizer(), kScript),
        api_(service, metrics, api, [this](const std::string& line) {
          std::lock_guard<std::mutex> lock(log_mutex);
          log.push_back(line);
        }) {
    ph::serve::HttpServerOptions options;
    options.port = 0;
    options.max_body_bytes = max_body;
    options.max_connections = max_connections;
    options.io_timeout = std::chrono::milliseconds(5000);
    http = std::make_unique<ph::serve::HttpServer>(
        options, [this](ph::serve::HttpExchange& e) { api_.handle(e); },
        [this](const std::string& remote, int status, const std::string& why) {
          api_.log_refusal(remote, status, why);
        });
  }
  ~TestServer() { http.reset(); }

  HttpReply post(const std::string& target, const json& body,
                 const std::vector<std::pair<std::string, std::string>>& headers = {}) {
    return http_call(port(), "POST", target, body.dump(), headers);
  }
  HttpReply complete(const json& body) { return post("/v1/completions", body); }
  int port() const { return http->port(); }
  void start_draining() { api_.start_draining(); }
  std::vector<std::string> log_lines() {
    std::lock_guard<std::mutex> lock(log_mutex);
    return log;
  }

  ph::test::ScriptedService service;
  ph::serve::Metrics metrics;
  std::mutex log_mutex;
  std::vector<std::string> log;

 private:
  ph::serve::OpenAiApi api_;

 public:
  std::unique_ptr<ph::serve::HttpServer> http;
};

// The text the script gives from position `start`, `count` tokens, as the API decodes it
// after `context`.
std::string script_text(ph::test::ScriptedService& s, const std::vector<int32_t>& context,
                        size_t start, int count) {
  const std::vector<int32_t> script = s.script();
  std::vector<int32_t> all = context, generated;
  for (int i = 0; i < count; ++i) generated.push_back(script[(start + i) % script.size()]);
  const std::string before = demo_tokenizer().decode(all);
  all.insert(all.end(), generated.begin(), generated.end());
  return demo_tokenizer().decode(all).substr(before.size());
}

std::vector<int32_t> bos_and(const std::string& text) {
  std::vector<int32_t> ids = demo_tokenizer().encode(text);
  ids.insert(ids.begin(), demo_tokenizer().bos_id());
  return ids;
}

json api_error_of(const HttpReply& r) {
  const json body = json::parse(r.body);
  REQUIRE(body.contains("error"));
  const json& e = body["error"];
  CHECK(e["message"].is_string());
  CHECK(e.contains("type"));
  CHECK(e.contains("param"));
  CHECK(e.contains("code"));
  return e;
}

// Polls `done` for up to 5 s.
template <class Done>
bool eventually(Done done) {
  for (int i = 0; i < 500; ++i) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return done();
}

// How many of the log's lines contain `text`.
int count_lines(const std::vector<std::string>& lines, const std::string& text) {
  int n = 0;
  for (const auto& line : lines) n += line.find(text) != std::string::npos;
  return n;
}

}  // namespace

TEST_CASE("a completion returns the scheduler's tokens as text, with usage", "[serve_api]") {
  TestServer server;
  HttpReply r =
      server.complete({{"model", "demo"}, {"prompt", "Hello"}, {"max_tokens", 5}, {"seed", 2}});
  REQUIRE(r.status == 200);
  CHECK(r.headers["content-type"] == "application/json");
  const json body = json::parse(r.body);
  CHECK(body["object"] == "text_completion");
  CHECK(body["model"] == "demo");
  CHECK(body["id"].get<std::string>().rfind("cmpl-", 0) == 0);
  REQUIRE(body["choices"].size() == 1);
  const json& c = body["choices"][0];
  CHECK(c["index"] == 0);
  CHECK(c["text"] == script_text(server.service, bos_and("Hello"), 2, 5));
  CHECK(c["finish_reason"] == "length");
  CHECK(c["logprobs"].is_null());
  CHECK(body["usage"]["prompt_tokens"] == bos_and("Hello").size());
  CHECK(body["usage"]["completion_tokens"] == 5);
  CHECK(body["usage"]["total_tokens"] == bos_and("Hello").size() + 5);
  CHECK(server.service.seeds() == std::vector<uint64_t>{2});
}

TEST_CASE("token id prompts are used as given; lists of prompts give a choice each",
          "[serve_api]") {
  TestServer server;
  const std::vector<int32_t> ids = {5, 6, 7};
  HttpReply one =
      server.complete({{"model", "demo"}, {"prompt", ids}, {"max_tokens", 3}, {"seed", 0}});
  REQUIRE(one.status == 200);
  CHECK(json::parse(one.body)["usage"]["prompt_tokens"] == 3);
  CHECK(json::parse(one.body)["choices"][0]["text"] == script_text(server.service, ids, 0, 3));

  HttpReply many = server.complete({{"model", "demo"},
                                    {"prompt", json::array({json(ids), json({9, 10})})},
                                    {"max_tokens", 2},
                                    {"seed", 4},
                                    {"n", 2}});
  REQUIRE(many.status == 200);
  const json body = json::parse(many.body);
  REQUIRE(body["choices"].size() == 4);
  // Choice p·n + i uses seed + i: the same for every prompt.
  CHECK(body["choices"][1]["text"] == script_text(server.service, ids, 5, 2));
  CHECK(body["choices"][2]["text"] == script_text(server.service, {9, 10}, 4, 2));
  for (int i = 0; i < 4; ++i) CHECK(body["choices"][i]["index"] == i);
  CHECK(body["usage"]["prompt_tokens"] == 5);
  CHECK(body["usage"]["completion_tokens"] == 8);
  const std::vector<uint64_t> seeds = server.service.seeds();
  CHECK(std::vector<uint64_t>(seeds.begin() + 1, seeds.end()) == std::vector<uint64_t>{4, 5, 4, 5});
}

TEST_CASE("a stop string ends the choice before it, also across tokens", "[serve_api]") {
  TestServer server;
  for (bool stream : {false, true}) {
    HttpReply r = server.complete({{"model", "demo"},
                                   {"prompt", "x"},
                                   {"max_tokens", 10},
                                   {"seed", 0},
                                   {"stop", {" thr", "nine"}},
                                   {"stream", stream}});
    REQUIRE(r.status == 200);
    std::string text, reason;
    if (!stream) {
      text = json::parse(r.body)["choices"][0]["text"];
      reason = json::parse(r.body)["choices"][0]["finish_reason"];
    } else {
      for (const std::string& e : sse_events(r.body)) {
        if (e == "[DONE]") continue;
        const json c = json::parse(e)["choices"][0];
        text += c["text"].get<std::string>();
        if (!c["finish_reason"].is_null()) reason = c["finish_reason"];
      }
    }
    CHECK(text == " one two");
    CHECK(reason == "stop");
  }
}

TEST_CASE("a stop id ends the choice with finish_reason stop", "[serve_api]") {
  TestServer server;
  server.service.eos = server.service.script()[2];
  HttpReply r =
      server.complete({{"model", "demo"}, {"prompt", "x"}, {"max_tokens", 10}, {"seed", 0}});
  const json c = json::parse(r.body)["choices"][0];
  CHECK(c["finish_reason"] == "stop");
  CHECK(json::parse(r.body)["usage"]["completion_tokens"] == 3);
}

TEST_CASE("streaming sends SSE chunks whose text is the whole completion, then [DONE]",
          "[serve_api]") {
  TestServer server;
  const json request = {{"model", "demo"},
                        {"prompt", "Hello"},
                        {"max_tokens", 6},
                        {"seed", 1},
                        {"n", 2},
                        {"stream", true},
                        {"stream_options", {{"include_usage", true}}}};
  HttpReply r = server.complete(request);
  REQUIRE(r.status == 200);
  CHECK(r.headers["content-type"] == "text/event-stream");
  CHECK(r.headers["transfer-encoding"] == "chunked");
  const std::vector<std::string> events = sse_events(r.body);
  REQUIRE(events.size() >= 4);
  CHECK(events.back() == "[DONE]");
  const json usage = json::parse(events[events.size() - 2]);
  CHECK(usage["choices"].empty());
  CHECK(usage["usage"]["completion_tokens"] == 12);
  std::string text[2];
  int finished[2] = {0, 0};
  for (size_t i = 0; i + 2 < events.size(); ++i) {
    const json e = json::parse(events[i]);
    CHECK(e["object"] == "text_completion");
    REQUIRE(e["choices"].size() == 1);
    const json& c = e["choices"][0];
    const int index = c["index"];
    CHECK(finished[index] == 0);  // nothing after a choice's last chunk
    text[index] += c["text"].get<std::string>();
    if (!c["finish_reason"].is_null()) {
      CHECK(c["finish_reason"] == "length");
      ++finished[index];
    }
  }
  CHECK(finished[0] == 1);
  CHECK(finished[1] == 1);
  CHECK(text[0] == script_text(server.service, bos_and("Hello"), 1, 6));
  CHECK(text[1] == script_text(server.service, bos_and("Hello"), 2, 6));
}

TEST_CASE("logprobs are the log-softmax of the logits, with the top alternatives; echo",
          "[serve_api]") {
  TestServer server;
  HttpReply r = server.complete({{"model", "demo"},
                                 {"prompt", "Hello"},
                                 {"max_tokens", 3},
                                 {"seed", 0},
                                 {"logprobs", 2},
                                 {"echo", true}});
  REQUIRE(r.status == 200);
  const json c = json::parse(r.body)["choices"][0];
  const std::vector<int32_t> prompt = bos_and("Hello");
  const std::string prompt_text = demo_tokenizer().decode(prompt);
  CHECK(c["text"] == prompt_text + script_text(server.service, prompt, 0, 3));
  const json& lp = c["logprobs"];
  REQUIRE(lp["tokens"].size() == prompt.size() + 3);
  // The script's logits: 5 on the token, 0 on the 1023 others.
  const double vocab = demo_tokenizer().vocab_size();
  const double chosen = 5 - std::log(std::exp(5.0) + vocab - 1);
  const double other = -std::log(std::exp(5.0) + vocab - 1);
  CHECK(lp["token_logprobs"][0].is_null());  // a prompt's first token has none
  CHECK(lp["token_logprobs"][1].get<double>() == Approx(-std::log(vocab)).epsilon(1e-12));
  for (size_t k = prompt.size(); k < prompt.size() + 3; ++k) {
    CHECK(lp["token_logprobs"][k].get<double>() == Approx(chosen).epsilon(1e-12));
    const json& top = lp["top_logprobs"][k];
    REQUIRE(top.size() == 2);
    CHECK(top[lp["tokens"][k].get<std::string>()].get<double>() == Approx(chosen).epsilon(1e-12));
    for (const auto& [text, value] : top.items())
      if (text != lp["tokens"][k]) CHECK(value.get<double>() == Approx(other).epsilon(1e-12));
  }
  CHECK(lp["text_offset"][prompt.size()] == prompt_text.size());
}

TEST_CASE("malformed requests get 400 naming the field", "[serve_api]") {
  TestServer server;
  const json ok = {{"model", "demo"}, {"prompt", "Hi"}, {"max_tokens", 2}};
  struct Case {
    const char* field;
    json value;
  };
  const std::vector<Case> cases = {
      {"model", 3},
      {"prompt", true},
      {"prompt", json::array()},
      {"prompt", {1, "a"}},
      {"prompt", {-1}},
      {"prompt", {{1}, "a"}},
      {"max_tokens", "2"},
      {"max_tokens", -1},
      {"max_tokens", 2.5},
      {"temperature", "1"},
      {"temperature", -0.5},
      {"top_p", 0},
      {"top_p", 1.5},
      {"top_k", -2},
      {"seed", -1},
      {"seed", "7"},
      {"stop", 5},
      {"stop", {""}},
      {"n", 0},
      {"n", 1000},
      {"echo", "yes"},
      {"logprobs", 100},
      {"stream", 1},
      {"frequency_penalty", 0.5},
      {"best_of", 3},
      {"no_such_field", 1},
      {"stream_options", 1},
  };
  for (const Case& c : cases) {
    json body = ok;
    body[c.field] = c.value;
    HttpReply r = server.complete(body);
    INFO(c.field << " = " << c.value.dump() << " -> " << r.body);
    CHECK(r.status == 400);
    const json e = api_error_of(r);
    CHECK(e["type"] == "invalid_request_error");
    CHECK(e["param"] == c.field);
    CHECK(e["message"].get<std::string>().find(c.field) != std::string::npos);
  }
  for (const char* missing : {"model", "prompt"}) {
    json body = ok;
    body.erase(missing);
    HttpReply r = server.complete(body);
    CHECK(r.status == 400);
    CHECK(api_error_of(r)["param"] == std::string(missing));
  }
  for (const std::string& bad :
       {std::string("{\"model\": "), std::string("[1, 2]"), std::string("not json"),
        std::string(200, '[') + std::string(200, ']')}) {
    HttpReply r = http_call(server.port(), "POST", "/v1/completions", bad);
    INFO(bad);
    CHECK(r.status == 400);
    CHECK(api_error_of(r)["type"] == "invalid_request_error");
  }
  CHECK(server.service.seeds().empty());  // nothing reached the scheduler
}

TEST_CASE("prompt + max_tokens beyond the context is 400 context_length_exceeded", "[serve_api]") {
  TestServer server;
  server.service.context = 10;
  const std::vector<int32_t> ids = {1, 2, 3, 4};
  CHECK(server.complete({{"model", "demo"}, {"prompt", ids}, {"max_tokens", 6}}).status == 200);
  HttpReply r = server.complete({{"model", "demo"}, {"prompt", ids}, {"max_tokens", 7}});
  CHECK(r.status == 400);
  json e = api_error_of(r);
  CHECK(e["code"] == "context_length_exceeded");
  CHECK(e["param"] == "max_tokens");
  CHECK(e["message"].get<std::string>().find("maximum context length is 10") != std::string::npos);
  r = server.complete(
      {{"model", "demo"}, {"prompt", std::vector<int32_t>(10, 1)}, {"max_tokens", 1}});
  CHECK(api_error_of(r)["param"] == "prompt");
  r = server.complete({{"model", "demo"}, {"prompt", {1, 2000}}, {"max_tokens", 1}});
  CHECK(r.status == 400);  // the id is outside the vocabulary (prepare's check)
  CHECK(api_error_of(r)["param"] == "prompt");
}

TEST_CASE("an unknown model is 404 model_not_found; an unknown route 404; a wrong method 405",
          "[serve_api]") {
  TestServer server;
  HttpReply r = server.complete({{"model", "nope"}, {"prompt", "Hi"}});
  CHECK(r.status == 404);
  CHECK(api_error_of(r)["code"] == "model_not_found");
  r = http_call(server.port(), "GET", "/v1/nothing");
  CHECK(r.status == 404);
  r = http_call(server.port(), "GET", "/v1/completions");
  CHECK(r.status == 405);
  r = http_call(server.port(), "POST", "/v1/models", "{}");
  CHECK(r.status == 405);
}

TEST_CASE("with --api-key, /v1/* need the bearer token (401 otherwise); /health does not",
          "[serve_api]") {
  ph::serve::ApiOptions options;
  options.api_key = "sekrit";
  TestServer server(options);
  const json body = {{"model", "demo"}, {"prompt", "Hi"}, {"max_tokens", 1}};
  HttpReply r = server.post("/v1/completions", body);
  CHECK(r.status == 401);
  CHECK(api_error_of(r)["type"] == "authentication_error");
  CHECK(api_error_of(r)["code"] == "invalid_api_key");
  for (const char* wrong :
       {"Bearer sekriT", "Bearer sekrit2", "sekrit", "Basic sekrit", "Bearer "}) {
    INFO(wrong);
    CHECK(server.post("/v1/completions", body, {{"Authorization", wrong}}).status == 401);
  }
  CHECK(http_call(server.port(), "GET", "/v1/models").status == 401);
  CHECK(server.post("/v1/completions", body, {{"Authorization", "Bearer sekrit"}}).status == 200);
  CHECK(http_call(server.port(), "GET", "/v1/models", "", {{"Authorization", "Bearer sekrit"}})
            .status == 200);
  CHECK(http_call(server.port(), "GET", "/health").status == 200);
  CHECK(server.service.seeds().size() == 1);
}

TEST_CASE("a full queue is 429 with Retry-After; the slot frees when the request ends",
          "[serve_api]") {
  TestServer server;
  server.service.max_queue = 2;
  server.service.step = std::chrono::milliseconds(20);
  // 50 tokens at 20 ms: the queue stays full for about 1 s, time enough for the next
  // request to arrive even on a loaded machine (15 tokens, 300 ms, flaked once).
  std::thread busy([&] {
    server.complete({{"model", "demo"}, {"prompt", "Hi"}, {"max_tokens", 50}, {"n", 2}});
  });
  REQUIRE(eventually([&] { return server.service.stats().active == 2; }));
  HttpReply r = server.complete({{"model", "demo"}, {"prompt", "Hi"}, {"max_tokens", 1}});
  CHECK(r.status == 429);
  CHECK(r.headers["retry-after"] == "1");
  CHECK(api_error_of(r)["type"] == "rate_limit_error");
  busy.join();
  CHECK(server.complete({{"model", "demo"}, {"prompt", "Hi"}, {"max_tokens", 1}}).status == 200);
}

TEST_CASE("a body over the limit is 413; the server keeps serving", "[serve_api]") {
  TestServer server({}, 4096);
  const json big = {{"model", "demo"}, {"prompt", std::string(5000, 'a')}};
  HttpReply r = server.complete(big);
  CHECK(r.status == 413);
  CHECK(api_error_of(r)["code"] == "request_too_large");
  CHECK(api_error_of(r)["message"].get<std::string>().find("4096") != std::string::npos);
  CHECK(server.complete({{"model", "demo"}, {"prompt", "Hi"}, {"max_tokens", 1}}).status == 200);
  // curl's way: Expect: 100-continue, the body only once the server says so.
  ph::test::HttpTestClient curl_like(server.port());
  const std::string body = json({{"model", "demo"},
                                 {"prompt", "Hi"},
                                 {"user", std::string(2000, 'u')},
                                 {"max_tokens", 1}})
                               .dump();
  curl_like.write_raw(
      "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
      "Expect: 100-continue\r\nContent-Length: " +
      std::to_string(body.size()) + "\r\n\r\n");
  CHECK(curl_like.read_some().rfind("HTTP/1.1 100 Continue\r\n", 0) == 0);
  curl_like.write_raw(body);
  HttpReply continued = curl_like.receive();
  CHECK(continued.status == 200);
  // Each line is written after its answer is sent, so the client may already be on its
  // next request: the lines' order is not the requests'.
  REQUIRE(eventually([&] { return server.log_lines().size() == 3; }));
  CHECK(count_lines(server.log_lines(), " 413 (body over --max-body-bytes)") == 1);
}

TEST_CASE("while draining, completions get 503 and /health says so", "[serve_api]") {
  TestServer server;
  server.start_draining();
  HttpReply r = server.complete({{"model", "demo"}, {"prompt", "Hi"}, {"max_tokens", 1}});
  CHECK(r.status == 503);
  CHECK(api_error_of(r)["code"] == "draining");
  HttpReply h = http_call(server.port(), "GET", "/health");
  CHECK(h.status == 503);
  CHECK(json::parse(h.body)["status"] == "draining");
}

TEST_CASE("a client that disconnects cancels its sequences and frees their slots", "[serve_api]") {
  TestServer server;
  server.service.step = std::chrono::milliseconds(20);
  server.service.context = 4096;
  for (bool stream : {false, true}) {
    INFO("stream " << stream);
    const int cancels = server.service.cancels;
    ph::test::HttpTestClient client(server.port());
    client.send("POST", "/v1/completions",
                json({{"model", "demo"},
                      {"prompt", "Hi"},
                      {"max_tokens", 1000},
                      {"n", 3},
                      {"stream", stream}})
                    .dump());
    REQUIRE(eventually([&] { return server.service.stats().active == 3; }));
    if (stream) {  // the headers, then the first event
      std::string received;
      for (int i = 0; i < 50 && received.find("data: ") == std::string::npos; ++i)
        received += client.read_some();
      CHECK(received.find("data: ") != std::string::npos);
    }
    client.close();
    CHECK(eventually([&] { return server.service.stats().active == 0; }));
    CHECK(server.service.cancels == cancels + 3);
  }
  // Nothing ran to its end: 1000 tokens at 20 ms would take 20 s.
  CHECK(eventually([&] {
    const auto lines = server.log_lines();
    return lines.size() == 2 && lines[0].find(" 499 ") != std::string::npos &&
           lines[1].find(" 499 ") != std::string::npos;
  }));
}

TEST_CASE("keep-alive serves several requests on one connection", "[serve_api]") {
  TestServer server;
  ph::test::HttpTestClient client(server.port());
  for (int i = 0; i < 3; ++i) {
    HttpReply r =
        client.call("POST", "/v1/completions",
                    json({{"model", "demo"}, {"prompt", "Hi"}, {"max_tokens", 2}}).dump());
    CHECK(r.status == 200);
  }
  CHECK(client.call("GET", "/health").status == 200);
  CHECK(server.http->open_connections() == 1);
}

TEST_CASE("/v1/models lists the base model and every adapter; load and unload", "[serve_api]") {
  TestServer server;
  json models = json::parse(http_call(server.port(), "GET", "/v1/models").body);
  CHECK(models["object"] == "list");
  REQUIRE(models["data"].size() == 1);
  CHECK(models["data"][0]["id"] == "demo");
  CHECK(models["data"][0]["max_model_len"] == 64);

  HttpReply r = server.post("/v1/load_adapter", {{"name", "a1"}, {"path", "/adapters/a1"}});
  REQUIRE(r.status == 200);
  CHECK(json::parse(r.body)["id"] == "a1");
  CHECK(server.post("/v1/load_adapter", {{"lora_name", "a2"}, {"lora_path", "/adapters/a2"}})
            .status == 200);
  models = json::parse(http_call(server.port(), "GET", "/v1/models").body);
  REQUIRE(models["data"].size() == 3);
  CHECK(models["data"][1]["id"] == "a1");
  CHECK(models["data"][1]["parent"] == "demo");
  CHECK(models["data"][1]["method"] == "prompt_tuning");
  CHECK(models["data"][1]["num_virtual_tokens"] == 4);
  CHECK(models["data"][2]["id"] == "a2");
  CHECK(server.complete({{"model", "a1"}, {"prompt", "Hi"}, {"max_tokens", 1}}).status == 200);

  r = server.post("/v1/load_adapter", {{"name", "a3"}, {"path", "/adapters/other-base"}});
  CHECK(r.status == 400);
  CHECK(api_error_of(r)["message"].get<std::string>().find("another base model") !=
        std::string::npos);
  CHECK(server.post("/v1/load_adapter", {{"name", "a1"}, {"path", "/x"}}).status == 400);
  CHECK(api_error_of(server.post("/v1/load_adapter", {{"name", "a4"}}))["param"] == "path");
  CHECK(server.post("/v1/load_adapter", {{"name", 4}, {"path", "/x"}}).status == 400);

  CHECK(server.post("/v1/unload_adapter", {{"name", "a1"}}).status == 200);
  r = server.post("/v1/unload_adapter", {{"name", "a1"}});
  CHECK(r.status == 404);
  CHECK(api_error_of(r)["code"] == "model_not_found");
  CHECK(server.complete({{"model", "a1"}, {"prompt", "Hi"}, {"max_tokens", 1}}).status == 404);
  CHECK(json::parse(http_call(server.port(), "GET", "/v1/models").body)["data"].size() == 2);
}

TEST_CASE("/health, and /metrics in Prometheus text with requests, tokens, histograms",
          "[serve_api]") {
  TestServer server;
  HttpReply health = http_call(server.port(), "GET", "/health");
  CHECK(health.status == 200);
  CHECK(json::parse(health.body)["status"] == "ok");
  server.post("/v1/load_adapter", {{"name", "a1"}, {"path", "/adapters/a1"}});
  for (int i = 0; i < 2; ++i)
    server.complete({{"model", "demo"}, {"prompt", {1, 2, 3}}, {"max_tokens", 4}});
  server.complete({{"model", "a1"}, {"prompt", {1, 2}}, {"max_tokens", 3}});
  server.complete({{"model", "demo"}, {"prompt", 5}});
  server.complete({{"model", "missing"}, {"prompt", "x"}});
  HttpReply m = http_call(server.port(), "GET", "/metrics");
  REQUIRE(m.status == 200);
  CHECK(m.headers["content-type"].rfind("text/plain; version=0.0.4", 0) == 0);
  const std::string& t = m.body;
  INFO(t);
  CHECK(t.find("prompthost_requests_total{model=\"demo\",status=\"200\"} 2\n") !=
        std::string::npos);
  CHECK(t.find("prompthost_requests_total{model=\"a1\",status=\"200\"} 1\n") != std::string::npos);
  CHECK(t.find("prompthost_requests_total{model=\"(unknown)\",status=\"400\"} 1\n") !=
        std::string::npos);
  CHECK(t.find("prompthost_requests_total{model=\"(unknown)\",status=\"404\"} 1\n") !=
        std::string::npos);
  CHECK(t.find("prompthost_prompt_tokens_total 8\n") != std::string::npos);
  CHECK(t.find("prompthost_generation_tokens_total 11\n") != std::string::npos);
  CHECK(t.find("prompthost_queue_length 0\n") != std::string::npos);
  CHECK(t.find("prompthost_active_sequences 0\n") != std::string::npos);
  CHECK(t.find("# TYPE prompthost_batch_size histogram") != std::string::npos);
  CHECK(t.find("prompthost_time_to_first_token_seconds_count 3\n") != std::string::npos);
  CHECK(t.find("prompthost_time_to_first_token_seconds_bucket{le=\"+Inf\"} 3\n") !=
        std::string::npos);
}

TEST_CASE("Prometheus histograms are cumulative; label values are escaped", "[serve_api]") {
  ph::serve::Histogram h({1, 2, 4});
  for (double v : {0.5, 1.0, 3.0, 9.0}) h.observe(v);
  std::string out;
  h.render("x", out);
  CHECK(
      out ==
      "x_bucket{le=\"1\"} 2\nx_bucket{le=\"2\"} 2\nx_bucket{le=\"4\"} 3\nx_bucket{le=\"+Inf\"} 4\n"
      "x_sum 13.5\nx_count 4\n");
  CHECK(ph::serve::prometheus_label("a\"b\\c\nd") == "a\\\"b\\\\c\\nd");
}

TEST_CASE("beyond max_connections a connection gets 503 at once", "[serve_api]") {
  TestServer server({}, 4096, 2);
  ph::test::HttpTestClient a(server.port()), b(server.port());
  CHECK(a.call("GET", "/health").status == 200);
  CHECK(b.call("GET", "/health").status == 200);
  HttpReply r = http_call(server.port(), "GET", "/health");
  CHECK(r.status == 503);
  CHECK(api_error_of(r)["code"] == "too_many_connections");
  a.close();
  CHECK(eventually([&] { return server.http->open_connections() == 1; }));
  CHECK(http_call(server.port(), "GET", "/health").status == 200);
}

TEST_CASE("the log has one line per request", "[serve_api]") {
  TestServer server;
  server.complete({{"model", "demo"}, {"prompt", "Hi"}, {"max_tokens", 2}});
  http_call(server.port(), "GET", "/health");
  // The line is written once the answer is sent.
  // (after the answer, so the two lines may come in either order)
  REQUIRE(eventually([&] { return server.log_lines().size() == 2; }));
  const auto lines = server.log_lines();
  const bool post_first = lines[0].find("\"POST /v1/completions\"") != std::string::npos;
  const std::string& post = lines[post_first ? 0 : 1];
  CHECK(post.find("\"POST /v1/completions\" 200 ") != std::string::npos);
  CHECK(post.find("model=demo prompt_tokens=") != std::string::npos);
  CHECK(post.find("completion_tokens=2") != std::string::npos);
  CHECK(lines[post_first ? 1 : 0].find("\"GET /health\" 200 ") != std::string::npos);
}
