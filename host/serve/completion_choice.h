// One choice of a completion while it is generated: its tokens, its text (decoded after
// the prompt with TextStream, cut before the first stop string), and its logprobs.
// Not thread-safe: the request's lock guards it (the scheduler's callbacks add to it,
// the connection's thread reads it).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>
#include <xtensor/xtensor.hpp>

#include "host/serve/scheduler.h"
#include "models/generate/text_stream.h"
#include "models/tokenizer/tokenizer.h"

namespace ph::serve {

// The log-softmax of `logits` (in double), the way logprobs are reported.
std::vector<double> log_softmax(const xt::xtensor<float, 1>& logits);

struct TokenLogprob {
  std::string token;              // its text (Tokenizer::piece), or its id as text
  std::optional<double> logprob;  // none for a prompt's first token
  std::vector<std::pair<std::string, double>> top;  // the `logprobs` most likely, best first
  size_t text_offset = 0;                           // where its text starts in the choice's text
};

// Logprobs in OpenAI's completions layout: {tokens, token_logprobs, top_logprobs,
// text_offset}, over entries [from, end).
nlohmann::json logprobs_json(const std::vector<TokenLogprob>& entries, size_t from = 0);

class CompletionChoice {
 public:
  // `context`: the prompt's real tokens (the text continues them); `echo_text` is put
  // before the generated text; `logprobs` < 0: none recorded.
  CompletionChoice(const Tokenizer* tokenizer, std::vector<int32_t> context, std::string echo_text,
                   std::vector<std::string> stops, int logprobs);

  // The prompt's logprobs (echo): `tokens` the prompt as prepared (virtual slots are
  // skipped), `logits` its rows.
  void add_prompt_logits(const std::vector<int32_t>& tokens, const xt::xtensor<float, 2>& logits);
  // A generated token; false when a stop string has now appeared (the choice ends).
  bool add(int32_t token, const xt::xtensor<float, 1>& logits);
  void finish(FinishReason reason);

  bool finished() const { return reason_.has_value(); }
  const char* finish_reason() const;
  int generated() const { return (int)tokens_.size(); }
  const std::vector<int32_t>& tokens() const { return tokens_; }
  // The text that can no longer change (no stop string may still start in it).
  std::string ready_text() const { return text_.substr(0, ready_); }
  size_t ready_size() const { return ready_; }
  const std::vector<TokenLogprob>& logprobs() const { return logprobs_; }
  bool wants_logprobs() const { return top_ >= 0; }

 private:
  void append_text(const std::string& more);
  TokenLogprob entry(int32_t token, const std::vector<double>& lp, size_t offset) const;
  std::string token_text(int32_t token) const;

  const Tokenizer* tokenizer_;
  std::unique_ptr<TextStream> stream_;
  std::vector<std::string> stops_;
  int top_;
  std::string text_;  // echo + generated text, cut at a stop string
  size_t ready_ = 0;  // text_[0, ready_) is final
  size_t echo_size_ = 0;
  bool stopped_ = false;  // a stop string cut the text
  std::vector<int32_t> tokens_;
  std::vector<TokenLogprob> logprobs_;
  std::optional<FinishReason> reason_;
};

}  // namespace ph::serve
