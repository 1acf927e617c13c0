// The server under load on 127.0.0.1 (in process, the demo model, five adapters): 64
// concurrent clients send 1,000 requests over mixed adapters and the base model, with
// random lengths, greedy or seeded sampling, streamed or not, some cancelled midway. No
// error but the expected 429s (a small queue; the client retries after Retry-After's
// hint), no request lost or answered twice, every answer equal to the same request run
// alone, the peak RSS flat between the first and the last hundred requests.
#include <catch.hpp>

#include <atomic>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include <nlohmann/json.hpp>

#include "models/generate/sampler.h"
#include "serve/model_server.h"


#if defined(__SANITIZE_ADDRESS__)
#define PH_ADDRESS_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define PH_ADDRESS_SANITIZER 1
#endif
#endif
#ifndef PH_ADDRESS_SANITIZER
#define PH_ADDRESS_SANITIZER 0
#endif
namespace {

using json = nlohmann::json;

constexpr int kClients = 64;
// Under AddressSanitizer (CI's hardening run, about 10x slower) 300 requests keep the
// suite within its time budget; the Release suite runs the full 1,000.
constexpr int kRequests = PH_ADDRESS_SANITIZER ? 300 : 1000;
constexpr int kMaxTokens = 24;

const ph::test::DemoAdapters& demo() {
  static const ph::test::DemoAdapters d("serve_load");
  return d;
}

// What a request asks; its answer is a prefix of its key's `kMaxTokens` reference.
struct Ask {
  std::string model, prompt;
  bool sampled = false;
  uint64_t seed = 0;
  int max_tokens = 1;
  bool stream = false;
  bool cancel = false;  // the client hangs up after the first event (or at once)
  std::string key() const {
    return model + "|" + prompt + "|" + std::to_string(sampled) + "|" + std::to_string(seed);
  }
};

json body_of(const Ask& a, int max_tokens) {
  return {{"model", a.model},
          {"prompt", a.prompt},
          {"max_tokens", max_tokens},
          {"temperature", a.sampled ? 0.8 : 0.0},
          {"top_p", 0.95},
          {"seed", a.seed},
          {"stream", a.stream},
          {"return_token_ids", true}};
}

std::vector<Ask> mixed_requests() {
  const std::vector<std::string> models = {"demo",  "pt",          "prefix",         "prefix_proj",
                                           "ptune", "multi:topic", "multi:sentiment"};
  const std::vector<std::string> prompts = {
      "Never trust a computer", "The best way to predict the future", "Q: What is", "A"};
  ph::Rng rng(2024);
  std::vector<Ask> asks(kRequests);
  for (Ask& a : asks) {
    a.model = models[rng.next_u64() % models.size()];
    a.prompt = prompts[rng.next_u64() % prompts.size()];
    a.sampled = rng.next_u64() % 2;
    a.seed = a.sampled ? rng.next_u64() % 3 : 0;
    a.max_tokens = 1 + (int)(rng.next_u64() % kMaxTokens);
    a.stream = rng.next_u64() % 2;
    a.cancel = rng.next_u64() % 10 == 0;
  }
  return asks;
}

// The resident set size now, bytes (Linux: /proc/self/statm).
size_t rss_bytes() {
  std::ifstream statm("/proc/self/statm");
  size_t pages = 0, resident = 0;
  statm >> pages >> resident;
  return resident * (size_t)sysconf(_SC_PAGESIZE);
}

struct Answer {
  int status = 0;
  std::vector<int32_t> ids;
  std::string id;  // the completion's "id"
  int attempts = 0;
};

// One request to its end on the client's connection (kept alive between requests):
// retried after a 429, cancelled by hanging up when asked (the next request connects
// again).
Answer run(int port, const Ask& a, std::unique_ptr<ph::test::HttpTestClient>& connection) {
  Answer out;
  for (;;) {
    ++out.attempts;
    if (!connection) connection = std::make_unique<ph::test::HttpTestClient>(port);
    ph::test::HttpTestClient& client = *connection;
    if (a.cancel) {
      client.send("POST", "/v1/completions", body_of(a, 200).dump());
      if (a.stream) client.read_some();  // the headers or the first event, then hang up
      connection.reset();                // closes the socket
      out.status = -1;
      return out;
    }
    const ph::test::HttpReply r =
        client.call("POST", "/v1/completions", body_of(a, a.max_tokens).dump());
    if (r.status == 429) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
      continue;
    }
    out.status = r.status;
    if (r.status != 200) return out;
    if (!a.stream) {
      const json body = json::parse(r.body);
      out.id = body["id"];
      out.ids = body["choices"][0]["token_ids"].get<std::vector<int32_t>>();
      return out;
    }
    for (const std::string& e : ph::test::sse_events(r.body)) {
      if (e == "[DONE]") continue;
      const json chunk = json::parse(e);
      out.id = chunk["id"];
      for (int32_t t : chunk["choices"][0]["token_ids"]) out.ids.push_back(t);
    }
    return out;
  }
}

}  // namespace

TEST_CASE("64 clients, 1000 mixed requests (300 under ASan): every answer its alone output, none lost, RSS flat",
          "[serve_load]") {
  const auto started = std::chrono::steady_clock::now();
  // A queue smaller than the clients: some requests get 429 and retry.
  ph::test::ModelServer server(demo(), 16, 24);
  const int port = server.port();
  const std::vector<Ask> asks = mixed_requests();

  // The references: each distinct request alone, kMaxTokens long.
  std::map<std::string, std::vector<int32_t>> reference;
  for (const Ask& a : asks) {
    if (reference.count(a.key())) continue;
    Ask alone = a;
    alone.stream = false;
    alone.cancel = false;
    alone.max_tokens = kMaxTokens;
    std::unique_ptr<ph::test::HttpTestClient> connection;
    const Answer r = run(port, alone, connection);
    REQUIRE(r.status == 200);
    reference[a.key()] = r.ids;
  }

  std::vector<Answer> answers(asks.size());
  std::atomic<int> next{0}, done{0};
  size_t peak_first = 0, peak_last = 0;
  std::atomic<bool> sampling{true};
  std::thread sampler([&] {  // the RSS peak while the first and the last 100 requests end
    while (sampling) {
      const size_t rss = rss_bytes();
      const int d = done;
      if (d <= 100) peak_first = std::max(peak_first, rss);
      if (d >= kRequests - 100) peak_last = std::max(peak_last, rss);
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  });
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c)
    clients.emplace_back([&] {
      std::unique_ptr<ph::test::HttpTestClient> connection;
      for (int i; (i = next++) < kRequests;) {
        answers[i] = run(port, asks[i], connection);
        ++done;
      }
    });
  for (std::thread& t : clients) t.join();
  sampling = false;
  sampler.join();

  int cancelled = 0, retried = 0;
  std::set<std::string> ids;
  for (size_t i = 0; i < asks.size(); ++i) {
    const Ask& a = asks[i];
    const Answer& r = answers[i];
    retried += r.attempts > 1;
    if (a.cancel) {
      ++cancelled;
      continue;
    }
    INFO("request " << i << ": " << a.key() << " max_tokens " << a.max_tokens);
    REQUIRE(r.status == 200);
    CHECK(ids.insert(r.id).second);  // no completion answers two requests
    const std::vector<int32_t>& whole = reference.at(a.key());
    const size_t n = std::min((size_t)a.max_tokens, whole.size());
    CHECK(r.ids == std::vector<int32_t>(whole.begin(), whole.begin() + n));
  }
  // Every cancelled sequence was freed; the server counted each request once.
  for (int i = 0; i < 500 && server.service->stats().active + server.service->stats().queued > 0;
       ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  CHECK(server.service->stats().active == 0);
  CHECK(server.service->stats().queued == 0);
  const std::string metrics = ph::test::http_call(port, "GET", "/metrics").body;
  uint64_t ok = 0;
  for (size_t at = 0; (at = metrics.find(",status=\"200\"} ", at)) != std::string::npos; ++at)
    ok += std::stoull(metrics.substr(at + 15));
  CHECK(ok == reference.size() + (asks.size() - cancelled));

  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  WARN("load: " << asks.size() << " requests (" << cancelled << " cancelled, " << retried
                << " retried after 429) in " << seconds << " s; peak RSS " << peak_first / 1048576.0
                << " MiB over the first 100, " << peak_last / 1048576.0
                << " MiB over the last 100");
  CHECK(cancelled > kRequests / 20);  // about 10 % are cancelled
#if PH_ADDRESS_SANITIZER
  // AddressSanitizer keeps freed memory in quarantine (256 MB by default), so RSS grows
  // with every freed cache: the Release suite checks it.
  WARN("peak RSS not checked under AddressSanitizer (its quarantine holds freed memory)");
#else
  CHECK(peak_last <= peak_first + peak_first / 20);  // flat: within 5%
#endif
}
