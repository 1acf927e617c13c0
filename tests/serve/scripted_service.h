// A CompletionService without a model, for the HTTP API's tests: a decoding thread that
// "generates" the tokens of a script (a sequence with seed s starts at script[s % size]),
// one token per sequence every `step`, with logits that put 5 on the token and 0
// elsewhere (so its logprob is known). It honours max_tokens, stop ids, on_token's
// false, cancel, the queue bound and drain, as the Scheduler's contract says; it records
// the seeds it was given and the cancels.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>

#include "host/serve/api_error.h"
#include "host/serve/completion_service.h"
#include "models/generate/generate.h"

namespace ph::test {

class ScriptedService : public serve::CompletionService {
 public:
  ScriptedService(const Tokenizer& tokenizer, const std::string& script)
      : tokenizer_(tokenizer), script_(tokenizer.encode(script)) {
    worker_ = std::thread([this] { run(); });
  }
  ~ScriptedService() override {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      quit_ = true;
    }
    wake_.notify_all();
    worker_.join();
  }

  std::chrono::milliseconds step{1};
  int max_queue = 8;  // sequences held at once (running); beyond: submit() returns 0
  int context = 64;
  int eos = -1;  // a stop id, or none
  std::atomic<int> cancels{0};
  std::vector<int32_t> script() const { return script_; }
  std::vector<uint64_t> seeds() {
    std::lock_guard<std::mutex> lock(mutex_);
    return seeds_;
  }

  const std::string& base_name() const override { return base_; }
  int context_length() const override { return context; }
  const Tokenizer* tokenizer() const override { return &tokenizer_; }
  std::vector<int32_t> stop_ids() const override {
    return eos >= 0 ? std::vector<int32_t>{eos} : std::vector<int32_t>{};
  }

  serve::AdapterSummary load(const std::string& name, const std::string& path) override {
    std::lock_guard<std::mutex> lock(mutex_);
    if (path.find("other-base") != std::string::npos)
      throw serve::ApiError(400, path + ": the adapter was trained for another base model");
    if (adapters_.count(name) || name == base_)
      throw serve::ApiError(400, "an adapter named '" + name + "' is already loaded",
                            "invalid_request_error", "name");
    serve::AdapterSummary a;
    a.name = name;
    a.path = path;
    a.method = "prompt_tuning";
    a.peft_type = "PROMPT_TUNING";
    a.num_virtual_tokens = 4;
    adapters_[name] = a;
    order_.push_back(name);
    return a;
  }
  bool unload(const std::string& name) override {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!adapters_.erase(name)) return false;
    order_.erase(std::find(order_.begin(), order_.end(), name));
    return true;
  }
  std::vector<serve::AdapterSummary> adapters() const override {
    std::lock_guard<std::mutex> lock(mutex_);
    std::vector<serve::AdapterSummary> out;
    for (const std::string& name : order_) out.push_back(adapters_.at(name));
    return out;
  }
  serve::PreparedPrompt prepare(const std::string& model, const std::string&,
                                const serve::PromptInput& input) const override {
    std::lock_guard<std::mutex> lock(mutex_);
    if (model != base_ && !adapters_.count(model))
      throw serve::ApiError(404, "The model '" + model + "' does not exist",
                            "invalid_request_error", "model", "model_not_found");
    serve::PreparedPrompt p;
    p.injection = std::make_shared<InjectionCache>();
    p.adapter = model == base_ ? "" : model;
    if (input.is_ids) {
      for (int32_t id : input.ids)
        if (id >= tokenizer_.vocab_size())
          throw serve::ApiError(
              400, "'prompt' token id " + std::to_string(id) + " is outside the vocabulary",
              "invalid_request_error", "prompt");
      p.tokens = input.ids;
    } else {
      p.tokens = tokenizer_.encode(input.text);
      if (input.bos) p.tokens.insert(p.tokens.begin(), tokenizer_.bos_id());
    }
    p.text_ids = p.tokens;
    return p;
  }

  uint64_t submit(std::vector<serve::SequenceRequest> sequences) override {
    std::lock_guard<std::mutex> lock(mutex_);
    if (draining_ || (int)(running_.size() + sequences.size()) > max_queue) return 0;
    const uint64_t id = next_id_++;
    for (serve::SequenceRequest& s : sequences) {
      seeds_.push_back(s.seed);
      running_.push_back({id, std::move(s), 0, false});
    }
    wake_.notify_all();
    return id;
  }
  void cancel(uint64_t request) override {
    std::lock_guard<std::mutex> lock(mutex_);
    for (Running& r : running_)
      if (r.id == request && !r.cancelled) {
        r.cancelled = true;
        ++cancels;
      }
  }
  serve::SchedulerStats stats() const override {
    std::lock_guard<std::mutex> lock(mutex_);
    serve::SchedulerStats s;
    s.active = (int)running_.size();
    return s;
  }
  void drain(std::chrono::milliseconds timeout) override {
    std::unique_lock<std::mutex> lock(mutex_);
    draining_ = true;
    if (!idle_.wait_for(lock, timeout, [&] { return running_.empty(); }))
      for (Running& r : running_) r.shutdown = true;
    idle_.wait(lock, [&] { return running_.empty(); });
  }

 private:
  struct Running {
    uint64_t id;
    serve::SequenceRequest request;
    int generated;
    bool cancelled;
    bool shutdown = false;
  };

  xt::xtensor<float, 1> logits_for(int32_t token) const {
    xt::xtensor<float, 1> logits = xt::zeros<float>({(size_t)tokenizer_.vocab_size()});
    logits(token) = 5;
    return logits;
  }

  // One step: every sequence's next token, or its end.
  void step_all() {
    for (auto it = running_.begin(); it != running_.end();) {
      serve::SequenceRequest& s = it->request;
      std::optional<serve::FinishReason> end;
      if (it->cancelled)
        end = serve::FinishReason::kCancelled;
      else if (it->shutdown)
        end = serve::FinishReason::kShutdown;
      else if (it->generated >= s.max_tokens)
        end = serve::FinishReason::kLength;
      if (!end) {
        if (it->generated == 0 && s.on_prompt_logits)
          s.on_prompt_logits(
              xt::zeros<float>({s.prompt.tokens.size(), (size_t)tokenizer_.vocab_size()}));
        const int32_t token = script_[(s.seed + it->generated) % script_.size()];
        ++it->generated;
        const bool go_on = s.on_token(token, logits_for(token));
        const auto& stops = s.stop_ids;
        if (!go_on || std::find(stops.begin(), stops.end(), token) != stops.end())
          end = serve::FinishReason::kStop;
      }
      if (end) {
        s.on_finish(*end);
        it = running_.erase(it);
      } else {
        ++it;
      }
    }
    if (running_.empty()) idle_.notify_all();
  }

  void run() {
    std::unique_lock<std::mutex> lock(mutex_);
    while (!quit_) {
      if (running_.empty()) {
        wake_.wait(lock);
        continue;
      }
      step_all();
      lock.unlock();
      std::this_thread::sleep_for(step);
      lock.lock();
    }
    for (Running& r : running_) r.request.on_finish(serve::FinishReason::kShutdown);
  }

  const Tokenizer& tokenizer_;
  std::vector<int32_t> script_;
  std::string base_ = "demo";
  mutable std::mutex mutex_;
  std::condition_variable wake_, idle_;
  std::vector<Running> running_;
  std::map<std::string, serve::AdapterSummary> adapters_;
  std::vector<std::string> order_;
  std::vector<uint64_t> seeds_;
  uint64_t next_id_ = 1;
  bool draining_ = false;
  bool quit_ = false;
  std::thread worker_;
};

}  // namespace ph::test
