#include "host/serve/completion_handler.h"

#include <algorithm>
#include <condition_variable>
#include <ctime>
#include <memory>
#include <mutex>
#include <random>

#include <nlohmann/json.hpp>

#include "host/serve/api_error.h"
#include "host/serve/completion_choice.h"
#include "models/engine/engine.h"

namespace ph::serve {

namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

// A request's choices and the count of sequences still running, shared by the
// scheduler's callbacks and the connection's thread.
struct RequestState {
  std::mutex mutex;
  std::condition_variable changed;
  std::vector<CompletionChoice> choices;
  int running = 0;
  uint64_t version = 0;  // bumped by every callback: the waiter knows there is news
  Clock::time_point arrival = Clock::now();
  bool first_token = false;
};

// Refuses a prompt that cannot be continued within the context (OpenAI's
// context_length_exceeded) or that has nothing to continue from.
void check_fits(const PreparedPrompt& p, int max_tokens, int context) {
  const int injection = p.injection->length();
  const int prompt = (int)p.tokens.size();
  if (prompt == 0 && p.injection->last_logits().size() == 0)
    throw ApiError(400, "'prompt' is empty and the model has no virtual tokens to continue from",
                   "invalid_request_error", "prompt");
  if (injection + prompt + max_tokens <= context) return;
  std::string message = "This model's maximum context length is " + std::to_string(context) +
                        " tokens. However, you requested " +
                        std::to_string(injection + prompt + max_tokens) + " tokens (" +
                        std::to_string(prompt) + " in the prompt, " + std::to_string(injection) +
                        " of the adapter's virtual tokens, " + std::to_string(max_tokens) +
                        " in the completion). Please reduce the prompt or max_tokens.";
  throw ApiError(400, message, "invalid_request_error",
                 injection + prompt >= context ? "prompt" : "max_tokens",
                 "context_length_exceeded");
}

std::vector<PreparedPrompt> prepare_prompts(const CompletionContext& c,
                                            const CompletionRequest& r) {
  if (!c.service.tokenizer() && !r.stop.empty())
    throw ApiError(400, "'stop' needs a tokenizer to decode the text, and this model has none",
                   "invalid_request_error", "stop");
  std::vector<PreparedPrompt> prompts;
  for (const PromptInput& input : r.prompts) {
    if (!input.is_ids && !c.service.tokenizer())
      throw ApiError(400, "'prompt' is text but this model has no tokenizer: send token ids",
                     "invalid_request_error", "prompt");
    prompts.push_back(c.service.prepare(r.model, r.task, input));
    check_fits(prompts.back(), r.max_tokens, c.service.context_length());
  }
  return prompts;
}

uint64_t random_seed() {
  std::random_device device;
  return (uint64_t)device() << 32 | device();
}

SequenceRequest sequence(const std::shared_ptr<RequestState>& state, size_t index,
                         const PreparedPrompt& prompt, const CompletionRequest& r, uint64_t seed,
                         const CompletionContext& c) {
  SequenceRequest s;
  s.prompt = prompt;
  s.max_tokens = r.max_tokens;
  s.sampling = r.sampling;
  s.seed = seed;
  s.stop_ids = c.service.stop_ids();
  Metrics* metrics = &c.metrics;
  if (r.echo && r.logprobs >= 0)
    s.on_prompt_logits = [state, index, tokens = prompt.tokens](const xt::xtensor<float, 2>& l) {
      std::lock_guard<std::mutex> lock(state->mutex);
      state->choices[index].add_prompt_logits(tokens, l);
    };
  s.on_token = [state, index, metrics](int32_t token, const xt::xtensor<float, 1>& logits) {
    std::lock_guard<std::mutex> lock(state->mutex);
    if (!state->first_token) {
      state->first_token = true;
      metrics->observe_time_to_first_token(
          std::chrono::duration<double>(Clock::now() - state->arrival).count());
    }
    ++state->version;
    state->changed.notify_all();
    return state->choices[index].add(token, logits);
  };
  s.on_finish = [state, index](FinishReason reason) {
    std::lock_guard<std::mutex> lock(state->mutex);
    state->choices[index].finish(reason);
    --state->running;
    ++state->version;
    state->changed.notify_all();
  };
  return s;
}

// The choices' sequences, prompt by prompt, n per prompt: choice p·n + i samples with
// seed + i, so a prompt's choices are the same whatever other prompts the request holds.
std::vector<SequenceRequest> sequences(const std::shared_ptr<RequestState>& state,
                                       const std::vector<PreparedPrompt>& prompts,
                                       const CompletionRequest& r, const CompletionContext& c) {
  const Tokenizer* tokenizer = c.service.tokenizer();
  const uint64_t seed = r.seed ? *r.seed : random_seed();
  std::vector<SequenceRequest> out;
  for (const PreparedPrompt& p : prompts) {
    const std::string echo = r.echo && tokenizer ? tokenizer->decode(p.text_ids) : "";
    for (int i = 0; i < r.n; ++i) {
      state->choices.emplace_back(tokenizer, p.text_ids, echo, r.stop, r.logprobs);
      out.push_back(sequence(state, out.size(), p, r, seed + (uint64_t)i, c));
    }
  }
  state->running = (int)out.size();
  return out;
}

json usage(const CompletionTally& t) {
  return {{"prompt_tokens", t.prompt_tokens},
          {"completion_tokens", t.completion_tokens},
          {"total_tokens", t.prompt_tokens + t.completion_tokens}};
}

json envelope(const CompletionContext& c, const CompletionRequest& r) {
  return {{"id", c.id},
          {"object", "text_completion"},
          {"created", (int64_t)std::time(nullptr)},
          {"model", r.model}};
}

json choice_json(size_t index, const std::string& text, json logprobs, const char* reason) {
  return {{"index", index},
          {"text", text},
          {"logprobs", std::move(logprobs)},
          {"finish_reason", reason ? json(reason) : json()}};
}

void tally_tokens(CompletionTally& t, const std::vector<PreparedPrompt>& prompts,
                  const RequestState& state) {
  for (const PreparedPrompt& p : prompts) t.prompt_tokens += p.tokens.size();
  for (const CompletionChoice& choice : state.choices) t.completion_tokens += choice.generated();
}

// Waits for every sequence to end; cancels them when the client goes away. False then.
bool wait_all(HttpExchange& exchange, const CompletionContext& c, uint64_t id,
              RequestState& state) {
  std::unique_lock<std::mutex> lock(state.mutex);
  bool gone = false;
  while (state.running > 0) {
    state.changed.wait_for(lock, c.poll_interval);
    if (!gone && exchange.client_gone()) {
      gone = true;
      lock.unlock();  // cancel may finish sequences (and take this lock) at once
      c.service.cancel(id);
      lock.lock();
    }
  }
  return !gone;
}

void answer_whole(HttpExchange& exchange, const CompletionContext& c, const CompletionRequest& r,
                  uint64_t id, RequestState& state, CompletionTally& tally,
                  const std::vector<PreparedPrompt>& prompts) {
  const bool client_there = wait_all(exchange, c, id, state);
  std::lock_guard<std::mutex> lock(state.mutex);
  tally_tokens(tally, prompts, state);
  if (!client_there) {
    tally.client_gone = true;
    return;
  }
  for (const CompletionChoice& choice : state.choices)
    if (choice.finish_reason() && std::string(choice.finish_reason()) == "error")
      throw ApiError(500, "the server failed while decoding this request (its log says why)",
                     "server_error");
  json body = envelope(c, r);
  json choices = json::array();
  for (size_t i = 0; i < state.choices.size(); ++i) {
    const CompletionChoice& choice = state.choices[i];
    choices.push_back(choice_json(
        i, choice.ready_text(), choice.wants_logprobs() ? logprobs_json(choice.logprobs()) : json(),
        choice.finish_reason()));
  }
  if (r.return_token_ids)
    for (size_t i = 0; i < state.choices.size(); ++i) {
      choices[i]["token_ids"] = state.choices[i].tokens();
      choices[i]["prompt_token_ids"] = prompts[i / r.n].text_ids;
    }
  body["choices"] = std::move(choices);
  body["usage"] = usage(tally);
  exchange.respond(200, "application/json",
                   body.dump(-1, ' ', false, json::error_handler_t::replace));
}

std::string event(const json& data) {
  return "data: " + data.dump(-1, ' ', false, json::error_handler_t::replace) + "\n\n";
}

// Server-sent events: a chunk per choice with its new text whenever there is some, the
// choice's last chunk with its finish_reason, then (stream_options.include_usage) one
// with the usage, then "data: [DONE]".
void answer_stream(HttpExchange& exchange, const CompletionContext& c, const CompletionRequest& r,
                   uint64_t id, RequestState& state, CompletionTally& tally,
                   const std::vector<PreparedPrompt>& prompts) {
  bool ok = exchange.start_stream(200, "text/event-stream");
  const size_t n = state.choices.size();
  std::vector<size_t> sent_text(n, 0), sent_logprobs(n, 0), sent_tokens(n, 0);
  std::vector<bool> closed(n, false);
  uint64_t seen = 0;
  for (bool done = false; ok && !done;) {
    std::vector<std::string> events;
    {
      std::unique_lock<std::mutex> lock(state.mutex);
      state.changed.wait_for(lock, c.poll_interval, [&] { return state.version != seen; });
      seen = state.version;
      for (size_t i = 0; i < n; ++i) {
        const CompletionChoice& choice = state.choices[i];
        if (closed[i]) continue;
        const bool last = choice.finished();
        if (choice.ready_size() == sent_text[i] && !last) continue;
        json data = envelope(c, r);
        data["choices"] = json::array({choice_json(
            i, choice.ready_text().substr(sent_text[i]),
            choice.wants_logprobs() ? logprobs_json(choice.logprobs(), sent_logprobs[i]) : json(),
            choice.finish_reason())});
        if (r.return_token_ids) {
          const std::vector<int32_t>& tokens = choice.tokens();
          data["choices"][0]["token_ids"] =
              std::vector<int32_t>(tokens.begin() + sent_tokens[i], tokens.end());
          sent_tokens[i] = tokens.size();
        }
        events.push_back(event(data));
        sent_text[i] = choice.ready_size();
        sent_logprobs[i] = choice.logprobs().size();
        closed[i] = last;
      }
      done = state.running == 0 && std::find(closed.begin(), closed.end(), false) == closed.end();
    }
    for (const std::string& e : events) ok = ok && exchange.send_chunk(e);
    if (ok && exchange.client_gone()) ok = false;
  }
  if (!ok) c.service.cancel(id);
  wait_all(exchange, c, id, state);
  {
    std::lock_guard<std::mutex> lock(state.mutex);
    tally_tokens(tally, prompts, state);
  }
  if (!ok) {
    tally.client_gone = true;
    return;
  }
  if (r.include_usage) {
    json data = envelope(c, r);
    data["choices"] = json::array();
    data["usage"] = usage(tally);
    exchange.send_chunk(event(data));
  }
  exchange.end_stream("data: [DONE]\n\n");
}

}  // namespace

void serve_completion(HttpExchange& exchange, const CompletionContext& c,
                      const CompletionRequest& r, CompletionTally& tally) {
  const std::vector<PreparedPrompt> prompts = prepare_prompts(c, r);
  tally.model = prompts.front().adapter.empty() ? c.service.base_name() : prompts.front().adapter;
  auto state = std::make_shared<RequestState>();
  const uint64_t id = c.service.submit(sequences(state, prompts, r, c));
  if (id == 0)
    throw ApiError(429, "the server's queue is full: retry later", "rate_limit_error", "",
                   "queue_full");
  if (r.stream) {
    answer_stream(exchange, c, r, id, *state, tally, prompts);
  } else {
    answer_whole(exchange, c, r, id, *state, tally, prompts);
  }
}

}  // namespace ph::serve
