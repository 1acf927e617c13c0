// The server end to end on the demo model (the real AdapterRegistry and Scheduler behind
// the HTTP API, on 127.0.0.1): completions over HTTP equal `prompthost generate` token
// for token for every method, alone and when 8 requests over 4 adapters share the
// decoding steps, streamed or not; seeded sampling the same alone and under load;
// loading and unloading adapters while requests run on them.
#include <catch.hpp>

#include <future>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "cli_run.h"
#include "host/serve/completion_service.h"
#include "host/serve/http_server.h"
#include "host/serve/openai_api.h"
#include "models/engine/batch_decode.h"
#include "models/generate/generate.h"
#include "serve/demo_adapters.h"
#include "serve/http_test_client.h"
#include "serve/model_server.h"

namespace {

using json = nlohmann::json;
using ph::test::http_call;
using ph::test::HttpReply;

const ph::test::DemoAdapters& demo() {
  static const ph::test::DemoAdapters d("serve_model");
  return d;
}

struct ModelServer : ph::test::ModelServer {
  explicit ModelServer(int max_sequences = 16) : ph::test::ModelServer(demo(), max_sequences) {}
};

struct Case {
  std::string model;  // "demo", an adapter, or "multi:TASK"
  std::string prompt;
  int max_tokens = 20;
  float temperature = 0;
  uint64_t seed = 0;
};

// `prompthost generate --print-ids` on the case.
std::vector<int32_t> generate_ids(const Case& c) {
  std::ostringstream temperature;
  temperature << c.temperature;
  std::vector<std::string> args = {"generate",
                                   "--model",
                                   ph::test::source_path("models/demo/hf"),
                                   "--prompt",
                                   c.prompt,
                                   "--max-new-tokens",
                                   std::to_string(c.max_tokens),
                                   "--print-ids",
                                   "--seed",
                                   std::to_string(c.seed),
                                   "--temperature",
                                   temperature.str(),
                                   "--top-p",
                                   "0.95"};
  const std::string name = c.model.substr(0, c.model.find(':'));
  if (name != "demo") args.insert(args.end(), {"--adapter", demo().dir + "/" + name});
  if (c.model.find(':') != std::string::npos)
    args.insert(args.end(), {"--task", c.model.substr(c.model.find(':') + 1)});
  const ph::test::CommandResult r = ph::test::run_prompthost(args, demo().dir);
  INFO(r.err);
  REQUIRE(r.code == 0);
  std::string text = r.out;
  while (!text.empty() && text.back() == '\n') text.pop_back();
  std::istringstream last(text.substr(text.rfind('\n') + 1));
  std::vector<int32_t> ids;
  for (int32_t id; last >> id;) ids.push_back(id);
  return ids;
}

json request_of(const Case& c, bool stream) {
  return {{"model", c.model},
          {"prompt", c.prompt},
          {"max_tokens", c.max_tokens},
          {"temperature", c.temperature},
          {"top_p", 0.95},
          {"seed", c.seed},
          {"stream", stream},
          {"return_token_ids", true}};
}

// The completion's token ids (and text), whole or gathered from the stream's chunks.
struct Completion {
  int status = 0;
  std::vector<int32_t> ids;
  std::string text, finish_reason;
};

Completion complete(int port, const Case& c, bool stream) {
  const HttpReply r = http_call(port, "POST", "/v1/completions", request_of(c, stream).dump());
  Completion out;
  out.status = r.status;
  if (r.status != 200) return out;
  if (!stream) {
    const json choice = json::parse(r.body)["choices"][0];
    out.ids = choice["token_ids"].get<std::vector<int32_t>>();
    out.text = choice["text"];
    out.finish_reason = choice["finish_reason"];
    return out;
  }
  for (const std::string& e : ph::test::sse_events(r.body)) {
    if (e == "[DONE]") continue;
    const json choice = json::parse(e)["choices"][0];
    for (int32_t id : choice["token_ids"]) out.ids.push_back(id);
    out.text += choice["text"].get<std::string>();
    if (!choice["finish_reason"].is_null()) out.finish_reason = choice["finish_reason"];
  }
  return out;
}

// The value of a Prometheus line `name value`.
double metric(const std::string& text, const std::string& name) {
  const size_t at = text.find("\n" + name + " ");
  REQUIRE(at != std::string::npos);
  return std::stod(text.substr(at + name.size() + 2));
}

std::vector<Case> every_method(float temperature) {
  std::vector<Case> cases;
  uint64_t seed = 3;
  for (const char* model :
       {"demo", "pt", "prefix", "prefix_proj", "ptune", "multi:topic", "multi:sentiment", "adapt", "cart"})
    for (const char* prompt : {"Never trust a computer", "The best way to predict"})
      cases.push_back({model, prompt, 20, temperature, seed++});
  return cases;
}

// Every case alone (one request at a time), then 8 at once over 4 adapters, half of them
// streamed: each equals `prompthost generate`.
void check_alone_and_under_load(float temperature) {
  ModelServer server;
  const std::vector<Case> cases = every_method(temperature);
  std::vector<std::vector<int32_t>> expected;
  for (const Case& c : cases) expected.push_back(generate_ids(c));
  for (size_t i = 0; i < cases.size(); ++i) {
    INFO(cases[i].model << ": " << cases[i].prompt);
    const Completion got = complete(server.http->port(), cases[i], i % 2 == 1);
    REQUIRE(got.status == 200);
    CHECK(got.ids == expected[i]);
    CHECK_FALSE(got.text.empty());
  }
  // pt, prefix_proj, ptune, multi: 8 requests at once.
  const std::vector<size_t> picked = {2, 3, 6, 7, 8, 9, 10, 11};
  std::vector<std::future<Completion>> running;
  for (size_t k = 0; k < picked.size(); ++k)
    running.push_back(std::async(std::launch::async, [&, k] {
      return complete(server.http->port(), cases[picked[k]], k % 2 == 0);
    }));
  for (size_t k = 0; k < picked.size(); ++k) {
    const Completion got = running[k].get();
    INFO(cases[picked[k]].model << ": " << cases[picked[k]].prompt);
    REQUIRE(got.status == 200);
    CHECK(got.ids == expected[picked[k]]);
  }
  // The steps really were shared: some held more than one sequence.
  const std::string metrics = http_call(server.http->port(), "GET", "/metrics").body;
  CHECK(metric(metrics, "prompthost_batch_size_bucket{le=\"1\"}") <
        metric(metrics, "prompthost_batch_size_count"));
  const json m = json::parse(http_call(server.http->port(), "GET", "/v1/models").body);
  CHECK(m["data"].size() == 1 + ph::test::DemoAdapters::names().size());  // the base model too
}

}  // namespace

TEST_CASE("greedy completions over HTTP equal prompthost generate, alone and 8 at once",
          "[serve_model]") {
  check_alone_and_under_load(0);
}

TEST_CASE("seeded sampled completions equal generate's, alone and under load", "[serve_model]") {
  check_alone_and_under_load(0.8f);
}

TEST_CASE("n choices sample with seed + i", "[serve_model]") {
  ModelServer server;
  const Case c{"pt", "Never trust a computer", 12, 0.8f, 40};
  json body = request_of(c, false);
  body["n"] = 3;
  const HttpReply r = server.post("/v1/completions", body);
  REQUIRE(r.status == 200);
  const json choices = json::parse(r.body)["choices"];
  REQUIRE(choices.size() == 3);
  for (int i = 0; i < 3; ++i) {
    Case ci = c;
    ci.seed = c.seed + i;
    CHECK(choices[i]["token_ids"].get<std::vector<int32_t>>() == generate_ids(ci));
  }
}

TEST_CASE("the multitask task comes from model NAME:TASK or the task field", "[serve_model]") {
  ModelServer server;
  const Case c{"multi:sentiment", "Never trust a computer", 8};
  const std::vector<int32_t> expected = generate_ids(c);
  json body = request_of(c, false);
  body["model"] = "multi";
  body["task"] = "sentiment";
  HttpReply r = server.post("/v1/completions", body);
  REQUIRE(r.status == 200);
  CHECK(json::parse(r.body)["choices"][0]["token_ids"].get<std::vector<int32_t>>() == expected);
  body.erase("task");
  r = server.post("/v1/completions", body);
  CHECK(r.status == 400);  // a multitask adapter needs its task
  body["task"] = "nonsense";
  CHECK(server.post("/v1/completions", body).status == 400);
}

TEST_CASE("adapters load and unload while requests run on them", "[serve_model]") {
  ModelServer server;
  const int port = server.http->port();
  const Case c{"prefix_proj", "Never trust a computer", 60};
  const std::vector<int32_t> expected = generate_ids(c);
  // Streams on prefix_proj; it is unloaded as soon as the first has a token.
  ph::test::HttpTestClient first(port);
  first.send("POST", "/v1/completions", request_of(c, true).dump());
  std::vector<std::future<Completion>> others;
  for (int k = 0; k < 3; ++k)
    others.push_back(
        std::async(std::launch::async, [&, k] { return complete(port, c, k % 2 == 0); }));
  std::string received;
  for (int i = 0; i < 100 && received.find("data: ") == std::string::npos; ++i)
    received += first.read_some();
  REQUIRE(received.find("data: ") != std::string::npos);
  HttpReply r = server.post("/v1/unload_adapter", {{"name", "prefix_proj"}});
  REQUIRE(r.status == 200);
  // New requests no longer find it; the running ones finish, as they would have.
  CHECK(server.post("/v1/completions", request_of(c, false)).status == 404);
  for (auto& f : others) {
    const Completion got = f.get();
    if (got.status == 404) continue;  // it came after the unload
    CHECK(got.ids == expected);
    CHECK(got.finish_reason == "length");
  }
  while (received.find("data: [DONE]") == std::string::npos) {
    const std::string more = first.read_some();
    if (more.empty()) break;
    received += more;
  }
  CHECK(received.find("\"finish_reason\":\"length\"") != std::string::npos);
  CHECK(received.find("data: [DONE]") != std::string::npos);

  // Loaded again under another name, beside traffic on the others: the same completions.
  auto traffic = std::async(std::launch::async, [&] {
    return complete(port, {"pt", "The best way", 30}, true);
  });
  r = server.post("/v1/load_adapter", {{"name", "again"}, {"path", demo().dir + "/prefix_proj"}});
  REQUIRE(r.status == 200);
  CHECK(json::parse(r.body)["method"] == "prefix_tuning");
  Case again = c;
  again.model = "again";
  CHECK(complete(port, again, false).ids == expected);
  CHECK(traffic.get().status == 200);
  const json models = json::parse(http_call(port, "GET", "/v1/models").body);
  std::vector<std::string> ids;
  for (const json& m : models["data"]) ids.push_back(m["id"]);
  CHECK(ids == std::vector<std::string>{"demo", "pt", "prefix", "ptune", "multi", "adapt", "cart", "again"});
}

TEST_CASE("an adapter of another base model is refused with the reason", "[serve_model]") {
  ModelServer server;
  const std::string other =
      ph::test::fixtures_dir() + "/hf/adapters/gemma-tiny__multitask_prompt_tuning";
  const HttpReply r = server.post("/v1/load_adapter", {{"name", "gemma"}, {"path", other}});
  CHECK(r.status == 400);
  const json e = json::parse(r.body)["error"];
  INFO(e.dump());
  CHECK(e["message"].get<std::string>().find(other) != std::string::npos);
  CHECK(json::parse(http_call(server.http->port(), "GET", "/v1/models").body)["data"].size() ==
        1 + ph::test::DemoAdapters::names().size());
}

TEST_CASE("/v1/models describes each adapter: method, virtual tokens, tasks", "[serve_model]") {
  ModelServer server;
  const json data = json::parse(http_call(server.http->port(), "GET", "/v1/models").body)["data"];
  REQUIRE(data.size() == 8);
  CHECK(data[0]["id"] == "demo");
  CHECK(data[0]["max_model_len"] == demo().model.config.max_positions);
  CHECK(data[1]["method"] == "prompt_tuning");
  CHECK(data[1]["num_virtual_tokens"] == 4);
  CHECK(data[4]["has_template"] == true);
  CHECK(data[5]["tasks"] == json({"topic", "sentiment"}));
  CHECK(data[6]["method"] == "adaption_prompt");
  CHECK(data[7]["method"] == "cartridge");
}

// The placeholder BatchDecoder (before the batched one lands) refuses all_logits, which
// echo with logprobs needs.
bool batch_decoder_gives_all_logits() {
  ph::KVCache cache = ph::make_kv_cache(demo().model, 2);
  ph::DecodeItem item;
  item.cache = &cache;
  item.tokens = {1, 2};
  item.all_logits = true;
  std::vector<xt::xtensor<float, 2>> logits;
  try {
    ph::BatchDecoder(demo().model).step({item}, logits);
  } catch (const ph::Error& e) {
    if (std::string(e.what()).find("not implemented") != std::string::npos) return false;
    throw;
  }
  return true;
}

TEST_CASE("logprobs on the model: the greedy token is the top alternative; echo", "[serve_model]") {
  ModelServer server;
  for (bool echo : {false, true}) {
    INFO("echo " << echo);
    if (echo && !batch_decoder_gives_all_logits()) {
      WARN("SKIPPED: echo with logprobs: this BatchDecoder (the placeholder) has no all_logits");
      continue;
    }
    const HttpReply r = server.post("/v1/completions", {{"model", "pt"},
                                                        {"prompt", "Never trust"},
                                                        {"max_tokens", 5},
                                                        {"temperature", 0},
                                                        {"logprobs", 3},
                                                        {"echo", echo},
                                                        {"return_token_ids", true}});
    REQUIRE(r.status == 200);
    const json choice = json::parse(r.body)["choices"][0];
    const json& lp = choice["logprobs"];
    const size_t prompt = echo ? choice["prompt_token_ids"].size() : 0;
    const size_t n = lp["tokens"].size();
    REQUIRE(n == prompt + 5);
    for (size_t k = prompt; k < n; ++k) {
      const json& top = lp["top_logprobs"][k];
      REQUIRE(top.size() == 3);
      double best = -1e300;
      for (const auto& [text, value] : top.items()) best = std::max(best, value.get<double>());
      CHECK(lp["token_logprobs"][k].get<double>() == best);
      CHECK(best < 0);
    }
    if (echo) {
      CHECK(lp["token_logprobs"][0].is_null());
      for (size_t k = 1; k < prompt; ++k) CHECK(lp["token_logprobs"][k].get<double>() < 0);
    }
  }
}
