// The server's continuous batching (Scheduler) and its adapters (AdapterRegistry), on the
// bundled demo model with one adapter of every method (random weights, written as
// `prompthost train` writes them): completions equal `prompthost generate`'s token for
// token, alone and with many requests over several adapters sharing the decoding steps;
// cancel, unload while running, queue limits, drain; every refusal.
#include <catch2/catch.hpp>

#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>

#include <xtensor/xview.hpp>

#include "cli_run.h"
#include "host/serve/adapter_registry.h"
#include "host/serve/api_error.h"
#include "host/serve/scheduler.h"
#include "models/engine/batch_decode.h"
#include "models/generate/generate.h"
#include "serve/demo_adapters.h"
#include "test_support.h"

using namespace ph;
using namespace ph::serve;

namespace {

// The demo model, its tokenizer and one adapter of every method (serve/demo_adapters.h).
// Made once for the suite.
struct Demo : test::DemoAdapters {
  Demo() : DemoAdapters("serve_scheduler") {}
  std::vector<int32_t> stops() const { return stop_ids(model.config, tokenizer->eos_id()); }
  void load_all(AdapterRegistry& registry) const {
    for (const std::string& name : names()) registry.load(name, dir + "/" + name);
  }
};

const Demo& demo() {
  static const Demo d;
  return d;
}

// One completion asked of the server and of `prompthost generate`.
struct Case {
  std::string model;  // "demo", an adapter's name, or "multi:TASK"
  std::string prompt;
  int max_tokens = 24;
  float temperature = 0;  // 0: greedy
  uint64_t seed = 0;
};

std::vector<Case> every_method_cases(float temperature) {
  std::vector<Case> cases;
  const char* prompts[] = {"Never trust a computer", "The best way to predict the future",
                           "Q: What is"};
  uint64_t seed = 5;
  for (const char* model :
       {"demo", "pt", "prefix", "prefix_proj", "ptune", "multi:topic", "multi:sentiment"})
    cases.push_back({model, prompts[seed % 3], 24, temperature, seed++});
  return cases;
}

// `prompthost generate` on the case: the ids it prints (--print-ids, the last line).
std::vector<int32_t> generate_command_ids(const Case& c) {
  const Demo& d = demo();
  std::vector<std::string> args = {"generate",
                                   "--model",
                                   test::source_path("models/demo/hf"),
                                   "--prompt",
                                   c.prompt,
                                   "--max-new-tokens",
                                   std::to_string(c.max_tokens),
                                   "--print-ids",
                                   "--seed",
                                   std::to_string(c.seed)};
  std::ostringstream temperature;
  temperature << c.temperature;
  args.insert(args.end(), {"--temperature", temperature.str(), "--top-p", "0.95"});
  const std::string name = c.model.substr(0, c.model.find(':'));
  if (name != "demo") args.insert(args.end(), {"--adapter", d.dir + "/" + name});
  if (c.model.find(':') != std::string::npos)
    args.insert(args.end(), {"--task", c.model.substr(c.model.find(':') + 1)});
  const test::CommandResult r = test::run_prompthost(args, d.dir);
  INFO(r.err);
  REQUIRE(r.code == 0);
  std::string text = r.out;
  while (!text.empty() && text.back() == '\n') text.pop_back();
  std::istringstream last(text.substr(text.rfind('\n') + 1));
  std::vector<int32_t> ids;
  for (int32_t id; last >> id;) ids.push_back(id);
  return ids;
}

// A sequence's outcome, filled by its callbacks (on the scheduler thread).
struct Outcome {
  std::mutex mutex;
  std::condition_variable cv;
  std::vector<int32_t> tokens;
  std::vector<FinishReason> finishes;
  bool done() {
    std::lock_guard<std::mutex> lock(mutex);
    return !finishes.empty();
  }
  void wait() {
    std::unique_lock<std::mutex> lock(mutex);
    REQUIRE(cv.wait_for(lock, std::chrono::seconds(60), [&] { return !finishes.empty(); }));
  }
  size_t size() {
    std::lock_guard<std::mutex> lock(mutex);
    return tokens.size();
  }
};

SequenceRequest request_for(const AdapterRegistry& registry, const Case& c, Outcome& out) {
  PromptInput input;
  input.text = c.prompt;
  SequenceRequest r;
  r.prompt = registry.prepare(c.model, "", input);
  r.max_tokens = c.max_tokens;
  r.sampling.temperature = c.temperature;
  r.sampling.top_p = 0.95f;
  r.seed = c.seed;
  r.stop_ids = demo().stops();
  r.on_token = [&out](int32_t token, const xt::xtensor<float, 1>&) {
    std::lock_guard<std::mutex> lock(out.mutex);
    out.tokens.push_back(token);
    return true;
  };
  r.on_finish = [&out](FinishReason reason) {
    {
      std::lock_guard<std::mutex> lock(out.mutex);
      out.finishes.push_back(reason);
    }
    out.cv.notify_all();
  };
  return r;
}

uint64_t submit_one(Scheduler& scheduler, SequenceRequest r) {
  std::vector<SequenceRequest> one;
  one.push_back(std::move(r));
  return scheduler.submit(std::move(one));
}

// Every case alone, then every case twice, all at once (max_sequences at a time, prompts
// prefilled in chunks of 3 tokens beside the others' decoding): each equals `prompthost
// generate`.
void check_cases_alone_and_together(const std::vector<Case>& cases, int max_sequences) {
  const Demo& d = demo();
  AdapterRegistry registry(d.model, d.tokenizer.get(), "demo", {});
  d.load_all(registry);
  std::vector<std::vector<int32_t>> expected;
  for (const Case& c : cases) expected.push_back(generate_command_ids(c));

  SchedulerOptions options;
  options.max_sequences = max_sequences;
  options.prefill_chunk = 3;
  options.prefill_budget = 7;  // 3 + 3 + 1: some prompts wait, one is cut shorter
  int widest_step = 0, most_rows = 0;
  Scheduler scheduler(d.model, options, [&](const StepReport& r) {
    widest_step = std::max(widest_step, r.sequences);
    most_rows = std::max(most_rows, r.rows);
  });
  for (size_t i = 0; i < cases.size(); ++i) {
    Outcome out;
    REQUIRE(submit_one(scheduler, request_for(registry, cases[i], out)) > 0);
    out.wait();
    INFO(cases[i].model << " \"" << cases[i].prompt << "\" alone");
    CHECK(out.tokens == expected[i]);
  }
  std::vector<std::unique_ptr<Outcome>> outs;
  for (int copy = 0; copy < 2; ++copy)
    for (const Case& c : cases) {
      outs.push_back(std::make_unique<Outcome>());
      REQUIRE(submit_one(scheduler, request_for(registry, c, *outs.back())) > 0);
    }
  for (size_t i = 0; i < outs.size(); ++i) {
    outs[i]->wait();
    const size_t k = i % cases.size();
    INFO(cases[k].model << " \"" << cases[k].prompt << "\" under load");
    CHECK(outs[i]->tokens == expected[k]);
    CHECK(outs[i]->finishes.size() == 1);
  }
  CHECK(widest_step == max_sequences);  // the requests did share steps
  // At most the prefill budget of prompt tokens beside one token per other sequence.
  CHECK(most_rows <= options.prefill_budget + max_sequences - 1);
  CHECK(scheduler.stats().active == 0);
  CHECK(scheduler.stats().queued == 0);
}

// The ApiError fn() throws; status 0 (which every check of the callers rejects) if none.
template <class Fn>
ApiError api_error(Fn fn) {
  try {
    fn();
  } catch (const ApiError& e) {
    return e;
  }
  return ApiError(0, "no ApiError was thrown");
}

// The placeholder BatchDecoder (before the batched one lands) refuses all_logits.
bool batch_decoder_gives_all_logits(const Model& model) {
  KVCache cache = make_kv_cache(model, 2);
  DecodeItem item;
  item.cache = &cache;
  item.tokens = {1, 2};
  item.all_logits = true;
  std::vector<xt::xtensor<float, 2>> logits;
  try {
    BatchDecoder(model).step({item}, logits);
  } catch (const Error& e) {
    if (std::string(e.what()).find("not implemented") != std::string::npos) return false;
    throw;
  }
  return true;
}

}  // namespace

TEST_CASE("greedy completions equal prompthost generate for every method, alone and batched",
          "[serve]") {
  check_cases_alone_and_together(every_method_cases(0), 8);
}

TEST_CASE("seeded sampled completions are the same alone, under load and from generate",
          "[serve]") {
  check_cases_alone_and_together(every_method_cases(0.9f), 8);
}

TEST_CASE("the adapters change the completions (the test above compares real work)", "[serve]") {
  const Demo& d = demo();
  AdapterRegistry registry(d.model, d.tokenizer.get(), "demo", {});
  d.load_all(registry);
  PromptInput input;
  input.text = "Never trust a computer";
  const PreparedPrompt base = registry.prepare("demo", "", input);
  const PreparedPrompt topic = registry.prepare("multi:topic", "", input);
  const PreparedPrompt sentiment = registry.prepare("multi", "sentiment", input);
  CHECK(base.injection->length() == 0);
  CHECK(topic.injection->length() == 4);
  CHECK(topic.task == "topic");
  CHECK(sentiment.task == "sentiment");
  CHECK(topic.injection != sentiment.injection);
  CHECK(registry.prepare("multi", "1", input).injection == sentiment.injection);  // cached once
  CHECK(topic.tokens == base.tokens);  // BOS and the text; the virtual tokens are cached
  CHECK(topic.text_ids == base.tokens);
  // The template puts 2 virtual tokens before "Quote:" and 2 after the text.
  const PreparedPrompt ptune = registry.prepare("ptune", "", input);
  CHECK(ptune.injection->length() == 0);
  REQUIRE(ptune.virtual_rows);
  CHECK(ptune.virtual_rows->shape(0) == 4);
  REQUIRE(ptune.tokens.size() > 6);
  CHECK(ptune.tokens[0] == virtual_slot(0));
  CHECK(ptune.tokens[1] == virtual_slot(1));
  int slots = 0;
  for (int32_t t : ptune.tokens) slots += is_virtual(t);
  CHECK(slots == 4);
  CHECK(ptune.text_ids.size() == ptune.tokens.size() - 4);
  const PreparedPrompt prefix = registry.prepare("prefix", "", input);
  CHECK(prefix.injection->length() == 3);
  CHECK(prefix.injection->last_logits().size() == 0);  // a prefix has no virtual tokens
  const auto ids = [&](const std::string& model) {
    return generate_command_ids({model, input.text, 12, 0, 0});
  };
  CHECK(ids("multi:topic") != ids("multi:sentiment"));
  CHECK(ids("pt") != ids("demo"));
}

TEST_CASE("an empty prompt continues from the adapter's virtual tokens, as generate does",
          "[serve]") {
  const Demo& d = demo();
  AdapterRegistry registry(d.model, d.tokenizer.get(), "demo", {});
  d.load_all(registry);
  PromptInput input;
  input.text = "";
  input.bos = false;
  const PreparedPrompt p = registry.prepare("pt", "", input);
  CHECK(p.tokens.empty());
  const test::CommandResult r = test::run_prompthost(
      {"generate", "--model", test::source_path("models/demo/hf"), "--adapter", d.dir + "/pt",
       "--prompt", "", "--no-bos", "--temperature", "0", "--max-new-tokens", "10", "--print-ids"},
      d.dir);
  REQUIRE(r.code == 0);
  std::string text = r.out;
  while (!text.empty() && text.back() == '\n') text.pop_back();
  std::istringstream last(text.substr(text.rfind('\n') + 1));
  std::vector<int32_t> expected;
  for (int32_t id; last >> id;) expected.push_back(id);
  REQUIRE(!expected.empty());

  Scheduler scheduler(d.model, {});
  Outcome out;
  SequenceRequest req = request_for(registry, {"pt", "", 10, 0, 0}, out);
  req.prompt = p;
  REQUIRE(submit_one(scheduler, std::move(req)) > 0);
  out.wait();
  CHECK(out.tokens == expected);
  // The base model has nothing to continue from.
  const ApiError e = api_error([&] { registry.prepare("demo", "", input); });
  CHECK(e.status == 400);
  CHECK(e.param == "prompt");
}

TEST_CASE("cancel ends a running or queued request and frees its slot", "[serve]") {
  const Demo& d = demo();
  AdapterRegistry registry(d.model, d.tokenizer.get(), "demo", {});
  d.load_all(registry);
  SchedulerOptions options;
  options.max_sequences = 1;
  Scheduler scheduler(d.model, options);
  Outcome running, queued, next;
  Case long_case{"pt", "Never trust a computer", 200, 0, 0};
  SequenceRequest r = request_for(registry, long_case, running);
  r.stop_ids.clear();  // runs to the end of the context unless cancelled
  const uint64_t a = submit_one(scheduler, std::move(r));
  const uint64_t b = submit_one(scheduler, request_for(registry, long_case, queued));
  REQUIRE(a > 0);
  REQUIRE(b > 0);
  while (running.size() < 3) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  CHECK(scheduler.stats().active == 1);
  CHECK(scheduler.stats().queued == 1);
  scheduler.cancel(b);  // still queued: ends without a token
  scheduler.cancel(a);
  running.wait();
  queued.wait();
  CHECK(running.finishes == std::vector<FinishReason>{FinishReason::kCancelled});
  CHECK(queued.finishes == std::vector<FinishReason>{FinishReason::kCancelled});
  CHECK(queued.tokens.empty());
  CHECK(running.tokens.size() < 200);
  // The slot is free: the next request runs, and a stale or unknown id changes nothing.
  scheduler.cancel(a);
  scheduler.cancel(12345);
  const uint64_t c = submit_one(scheduler, request_for(registry, {"pt", "Hello", 5, 0, 0}, next));
  REQUIRE(c > 0);
  next.wait();
  CHECK(next.finishes == std::vector<FinishReason>{FinishReason::kLength});
  CHECK(next.tokens.size() == 5);
  CHECK(scheduler.stats().active == 0);
}

TEST_CASE("a request running on an adapter that is unloaded finishes", "[serve]") {
  const Demo& d = demo();
  AdapterRegistry registry(d.model, d.tokenizer.get(), "demo", {});
  d.load_all(registry);
  const Case c{"prefix_proj", "The best way to predict the future", 30, 0, 0};
  const std::vector<int32_t> expected = generate_command_ids(c);
  Scheduler scheduler(d.model, {});
  Outcome out;
  SequenceRequest r = request_for(registry, c, out);
  auto record = r.on_token;
  bool unloaded = false;
  r.on_token = [&](int32_t token, const xt::xtensor<float, 1>& logits) {
    if (!unloaded) unloaded = registry.unload("prefix_proj");  // after the first token
    return record(token, logits);
  };
  REQUIRE(submit_one(scheduler, std::move(r)) > 0);
  out.wait();
  CHECK(unloaded);
  CHECK(out.tokens == expected);
  const ApiError e = api_error([&] { registry.prepare("prefix_proj", "", PromptInput{}); });
  CHECK(e.status == 404);
  CHECK(e.code == "model_not_found");
  CHECK_FALSE(registry.unload("prefix_proj"));
  // Loaded again under the same name, it serves the same completions.
  registry.load("prefix_proj", d.dir + "/prefix_proj");
  Outcome again;
  REQUIRE(submit_one(scheduler, request_for(registry, c, again)) > 0);
  again.wait();
  CHECK(again.tokens == expected);
}

TEST_CASE("a full queue refuses, a request with too many choices is an error", "[serve]") {
  const Demo& d = demo();
  AdapterRegistry registry(d.model, d.tokenizer.get(), "demo", {});
  SchedulerOptions options;
  options.max_sequences = 1;
  options.max_queue = 1;
  Scheduler scheduler(d.model, options);
  Outcome a, b, c;
  const Case long_case{"demo", "Never trust a computer", 200, 0, 0};
  SequenceRequest first = request_for(registry, long_case, a);
  first.stop_ids.clear();
  const uint64_t id_a = submit_one(scheduler, std::move(first));
  const uint64_t id_b = submit_one(scheduler, request_for(registry, long_case, b));
  const uint64_t id_c = submit_one(scheduler, request_for(registry, long_case, c));
  CHECK(id_a > 0);
  CHECK(id_b > id_a);
  CHECK(id_c == 0);  // one running (or about to), one waiting: the queue is full
  std::vector<SequenceRequest> two;
  two.push_back(request_for(registry, long_case, c));
  two.push_back(request_for(registry, long_case, c));
  const ApiError e = api_error([&] { scheduler.submit(std::move(two)); });
  CHECK(e.status == 400);
  CHECK(e.param == "n");
  scheduler.cancel(id_a);
  scheduler.cancel(id_b);
  a.wait();
  b.wait();
  CHECK(!c.done());  // a refused request never hears back
}

TEST_CASE("drain finishes running requests, refuses new ones, and ends stragglers", "[serve]") {
  const Demo& d = demo();
  AdapterRegistry registry(d.model, d.tokenizer.get(), "demo", {});
  {
    Scheduler scheduler(d.model, {});
    Outcome a, refused;
    REQUIRE(submit_one(scheduler, request_for(registry, {"demo", "Hello", 12, 0, 0}, a)) > 0);
    scheduler.drain(std::chrono::seconds(60));
    CHECK(a.done());
    CHECK(a.finishes.front() != FinishReason::kShutdown);
    CHECK(submit_one(scheduler, request_for(registry, {"demo", "Hello", 4, 0, 0}, refused)) == 0);
  }
  Scheduler scheduler(d.model, {});
  Outcome slow;
  SequenceRequest r = request_for(registry, {"demo", "Hello", 250, 0, 0}, slow);
  r.stop_ids.clear();
  auto record = r.on_token;
  r.on_token = [&](int32_t token, const xt::xtensor<float, 1>& logits) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    return record(token, logits);
  };
  REQUIRE(submit_one(scheduler, std::move(r)) > 0);
  while (slow.size() < 1) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  scheduler.drain(std::chrono::milliseconds(50));
  CHECK(slow.done());
  CHECK(slow.finishes == std::vector<FinishReason>{FinishReason::kShutdown});
  CHECK(slow.tokens.size() < 250);
  CHECK(scheduler.stats().active == 0);
}

TEST_CASE("a scheduler destroyed with work left ends it with kShutdown", "[serve]") {
  const Demo& d = demo();
  AdapterRegistry registry(d.model, d.tokenizer.get(), "demo", {});
  Outcome running, queued;
  {
    SchedulerOptions options;
    options.max_sequences = 1;
    Scheduler scheduler(d.model, options);
    SequenceRequest r = request_for(registry, {"demo", "Hello", 250, 0, 0}, running);
    r.stop_ids.clear();
    REQUIRE(submit_one(scheduler, std::move(r)) > 0);
    REQUIRE(submit_one(scheduler, request_for(registry, {"demo", "Hi", 5, 0, 0}, queued)) > 0);
    while (running.size() < 1) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  CHECK(running.finishes == std::vector<FinishReason>{FinishReason::kShutdown});
  CHECK(queued.finishes == std::vector<FinishReason>{FinishReason::kShutdown});
}

TEST_CASE("on_token returning false stops the sequence there, the token included", "[serve]") {
  const Demo& d = demo();
  AdapterRegistry registry(d.model, d.tokenizer.get(), "demo", {});
  Scheduler scheduler(d.model, {});
  Outcome out;
  SequenceRequest r = request_for(registry, {"demo", "Hello", 20, 0, 0}, out);
  auto record = r.on_token;
  r.on_token = [&](int32_t token, const xt::xtensor<float, 1>& logits) {
    record(token, logits);
    return out.tokens.size() < 3;
  };
  REQUIRE(submit_one(scheduler, std::move(r)) > 0);
  out.wait();
  CHECK(out.tokens.size() == 3);
  CHECK(out.finishes == std::vector<FinishReason>{FinishReason::kStop});
}

TEST_CASE("max_tokens is cut at the end of the context, as generate cuts it", "[serve]") {
  const Demo& d = demo();
  AdapterRegistry registry(d.model, d.tokenizer.get(), "demo", {});
  d.load_all(registry);
  Scheduler scheduler(d.model, {});
  Outcome out;
  SequenceRequest r = request_for(registry, {"pt", "Hello", 1000, 0, 0}, out);
  r.stop_ids.clear();
  const int used = r.prompt.injection->length() + (int)r.prompt.tokens.size();
  REQUIRE(submit_one(scheduler, std::move(r)) > 0);
  out.wait();
  CHECK((int)out.tokens.size() == d.model.config.max_positions - used);
  CHECK(out.finishes == std::vector<FinishReason>{FinishReason::kLength});
}

TEST_CASE("submit refuses sequences that cannot run, naming the field", "[serve]") {
  const Demo& d = demo();
  AdapterRegistry registry(d.model, d.tokenizer.get(), "demo", {});
  Scheduler scheduler(d.model, {});
  Outcome out;
  const auto refused = [&](auto change) {
    SequenceRequest r = request_for(registry, {"demo", "Hello", 4, 0, 0}, out);
    change(r);
    return api_error([&] { submit_one(scheduler, std::move(r)); });
  };
  ApiError e = refused([&](SequenceRequest& r) { r.prompt.tokens.push_back(5000); });
  CHECK(e.status == 400);
  CHECK(e.param == "prompt");
  CHECK_THAT(e.what(), Catch::Contains("5000") && Catch::Contains("vocabulary"));
  e = refused([&](SequenceRequest& r) { r.prompt.tokens.push_back(virtual_slot(0)); });
  CHECK(e.param == "prompt");
  e = refused([&](SequenceRequest& r) { r.prompt.tokens.assign(300, 7); });
  CHECK(e.code == "context_length_exceeded");
  e = refused([&](SequenceRequest& r) { r.prompt.tokens.clear(); });
  CHECK(e.param == "prompt");
  e = refused([&](SequenceRequest& r) { r.max_tokens = -1; });
  CHECK(e.param == "max_tokens");
  e = refused([&](SequenceRequest& r) { r.sampling.top_p = 2; });
  CHECK(e.status == 400);
  CHECK(api_error([&] { scheduler.submit({}); }).param == "n");
  CHECK(scheduler.stats().queued == 0);
  CHECK(!out.done());
}

TEST_CASE("the registry lists its adapters and refuses bad names, folders and prompts", "[serve]") {
  const Demo& d = demo();
  AdapterRegistry registry(d.model, d.tokenizer.get(), "demo", {});
  d.load_all(registry);
  const std::vector<AdapterSummary> all = registry.list();
  REQUIRE(all.size() == 7);
  CHECK(all[0].name == "pt");
  CHECK(all[0].method == "prompt_tuning");
  CHECK(all[0].peft_type == "PROMPT_TUNING");
  CHECK(all[0].num_virtual_tokens == 4);
  CHECK(all[3].name == "ptune");
  CHECK(all[3].has_template);
  CHECK_FALSE(all[0].has_template);
  CHECK(all[4].peft_type == "MULTITASK_PROMPT_TUNING");
  CHECK(all[4].task_names == std::vector<std::string>{"topic", "sentiment"});
  CHECK(all[1].task_names.empty());
  CHECK(all[5].name == "adapt");
  CHECK(all[5].peft_type == "ADAPTION_PROMPT");
  CHECK(all[6].name == "cart");
  CHECK(all[6].peft_type == "CARTRIDGE");

  const auto load_error = [&](const std::string& name, const std::string& path) {
    return api_error([&] { registry.load(name, path); });
  };
  CHECK(load_error("pt", d.dir + "/pt").param == "name");  // taken
  CHECK(load_error("", d.dir + "/pt").param == "name");
  CHECK(load_error("a:b", d.dir + "/pt").param == "name");
  CHECK(load_error("a/b", d.dir + "/pt").param == "name");
  CHECK(load_error("demo", d.dir + "/pt").param == "name");
  const ApiError missing = load_error("x", d.dir + "/nothing-here");
  CHECK(missing.status == 400);
  CHECK(missing.param == "path");
  CHECK_THAT(missing.what(), Catch::Contains("nothing-here"));
  // An adapter of another base model: refused with the reason.
  const ApiError other =
      load_error("x", test::fixtures_dir() + "/hf/adapters/qwen2-tiny__prompt_tuning");
  CHECK(other.status == 400);
  CHECK_THAT(other.what(), Catch::Contains("token_dim") || Catch::Contains("layers"));
  CHECK(registry.list().size() == all.size());  // unchanged by the refusals

  PromptInput text;
  text.text = "Hello";
  const auto prepare_error = [&](const std::string& model, const std::string& task,
                                 const PromptInput& input) {
    return api_error([&] { registry.prepare(model, task, input); });
  };
  ApiError e = prepare_error("nope", "", text);
  CHECK(e.status == 404);
  CHECK(e.code == "model_not_found");
  CHECK(prepare_error("multi", "", text).param == "task");                 // needs a task
  CHECK(prepare_error("multi:nope", "", text).param == "task");            // unknown task
  CHECK(prepare_error("multi:2", "", text).param == "task");               // index past the tasks
  CHECK(prepare_error("multi:topic", "sentiment", text).param == "task");  // disagree
  CHECK(prepare_error("pt", "topic", text).param == "task");               // no tasks
  CHECK(prepare_error("demo:topic", "", text).param == "task");
  PromptInput ids;
  ids.is_ids = true;
  ids.ids = {1, 2, 1024};
  e = prepare_error("demo", "", ids);
  CHECK(e.param == "prompt");
  CHECK_THAT(e.what(), Catch::Contains("1024"));
  ids.ids = {1, -1};  // would be read as a virtual slot
  CHECK(prepare_error("pt", "", ids).param == "prompt");
  ids.ids = {5, 6};
  CHECK(prepare_error("ptune", "", ids).param == "prompt");  // ids with a template
  CHECK(registry.prepare("pt", "", ids).tokens == ids.ids);  // used as given, no BOS
  PromptInput long_text;
  for (int i = 0; i < 100; ++i) long_text.text += "the computer is a fortune ";
  CHECK(prepare_error("pt", "", long_text).code == "context_length_exceeded");
  CHECK(prepare_error("demo", "", long_text).code == "context_length_exceeded");
  AdapterRegistry no_tokenizer(d.model, nullptr, "demo", {});
  CHECK(api_error([&] { no_tokenizer.prepare("demo", "", text); }).param == "prompt");
}

TEST_CASE("on_prompt_logits gets the logits at every prompt token, over prefill chunks",
          "[serve]") {
  const Demo& d = demo();
  if (!batch_decoder_gives_all_logits(d.model)) {
    WARN("SKIPPED: this BatchDecoder (the placeholder) has no all_logits");
    return;
  }
  AdapterRegistry registry(d.model, d.tokenizer.get(), "demo", {});
  d.load_all(registry);
  SchedulerOptions options;
  options.prefill_chunk = 3;
  Scheduler scheduler(d.model, options);
  for (const char* model : {"demo", "ptune", "prefix"}) {
    Outcome out;
    SequenceRequest r =
        request_for(registry, {model, "The best way to predict the future", 2, 0, 0}, out);
    xt::xtensor<float, 2> prompt_logits;
    r.on_prompt_logits = [&](const xt::xtensor<float, 2>& logits) { prompt_logits = logits; };
    const PreparedPrompt p = r.prompt;
    REQUIRE(submit_one(scheduler, std::move(r)) > 0);
    out.wait();
    INFO(model);
    REQUIRE(out.finishes == std::vector<FinishReason>{FinishReason::kLength});
    REQUIRE(prompt_logits.shape(0) == p.tokens.size());
    REQUIRE(prompt_logits.shape(1) == size_t(d.model.config.vocab_size));
    // Row i: the logits after prompt token i, as extend() gives them one token at a time.
    KVCache cache = p.injection->start(d.model, p.injection->length() + (int)p.tokens.size());
    const xt::xtensor<float, 2> rows = p.virtual_rows ? *p.virtual_rows : xt::xtensor<float, 2>{};
    for (size_t i = 0; i < p.tokens.size(); ++i) {
      const xt::xtensor<float, 1> expected = extend(d.model, cache, {p.tokens[i]}, rows);
      const xt::xtensor<float, 1> got = xt::view(prompt_logits, i, xt::all());
      CHECK(got == expected);
    }
  }
}
