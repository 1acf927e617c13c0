#include "host/serve/completion_choice.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include <xtensor/xview.hpp>

#include "models/engine/engine.h"

namespace ph::serve {

std::vector<double> log_softmax(const xt::xtensor<float, 1>& logits) {
  std::vector<double> out(logits.begin(), logits.end());
  if (out.empty()) return out;
  const double top = *std::max_element(out.begin(), out.end());
  double sum = 0;
  for (double v : out) sum += std::exp(v - top);
  const double log_sum = top + std::log(sum);
  for (double& v : out) v -= log_sum;
  return out;
}

nlohmann::json logprobs_json(const std::vector<TokenLogprob>& entries, size_t from) {
  nlohmann::json tokens = nlohmann::json::array(), token_logprobs = nlohmann::json::array(),
                 top_logprobs = nlohmann::json::array(), offsets = nlohmann::json::array();
  for (size_t i = from; i < entries.size(); ++i) {
    const TokenLogprob& e = entries[i];
    tokens.push_back(e.token);
    token_logprobs.push_back(e.logprob ? nlohmann::json(*e.logprob) : nlohmann::json());
    nlohmann::json top = nlohmann::json::object();
    for (const auto& [text, lp] : e.top)
      if (!top.contains(text)) top[text] = lp;  // two ids may share a text: keep the best
    top_logprobs.push_back(e.logprob ? top : nlohmann::json());
    offsets.push_back(e.text_offset);
  }
  return {{"tokens", tokens},
          {"token_logprobs", token_logprobs},
          {"top_logprobs", top_logprobs},
          {"text_offset", offsets}};
}

CompletionChoice::CompletionChoice(const Tokenizer* tokenizer, std::vector<int32_t> context,
                                   std::string echo_text, std::vector<std::string> stops,
                                   int logprobs)
    : tokenizer_(tokenizer), stops_(std::move(stops)), top_(logprobs), text_(std::move(echo_text)) {
  if (tokenizer_) stream_ = std::make_unique<TextStream>(*tokenizer_, std::move(context));
  ready_ = echo_size_ = text_.size();
}

std::string CompletionChoice::token_text(int32_t token) const {
  if (!tokenizer_) return std::to_string(token);
  try {
    return tokenizer_->piece(token);
  } catch (const std::exception&) {  // an id the tokenizer lacks (a bigger model vocabulary)
    return std::to_string(token);
  }
}

TokenLogprob CompletionChoice::entry(int32_t token, const std::vector<double>& lp,
                                     size_t offset) const {
  TokenLogprob e;
  e.token = token_text(token);
  e.logprob = lp.at((size_t)token);
  e.text_offset = offset;
  std::vector<int32_t> order(lp.size());
  std::iota(order.begin(), order.end(), 0);
  const size_t k = std::min(order.size(), (size_t)top_);
  // Best first; the lower id first among equals (as argmax()).
  std::partial_sort(order.begin(), order.begin() + k, order.end(), [&](int32_t a, int32_t b) {
    return lp[a] > lp[b] || (lp[a] == lp[b] && a < b);
  });
  for (size_t i = 0; i < k; ++i) e.top.emplace_back(token_text(order[i]), lp[order[i]]);
  return e;
}

void CompletionChoice::add_prompt_logits(const std::vector<int32_t>& tokens,
                                         const xt::xtensor<float, 2>& logits) {
  if (top_ < 0) return;
  std::unique_ptr<TextStream> offsets;
  if (tokenizer_) offsets = std::make_unique<TextStream>(*tokenizer_, std::vector<int32_t>{});
  size_t offset = 0;
  for (size_t j = 0; j < tokens.size(); ++j) {
    if (is_virtual(tokens[j])) continue;
    TokenLogprob e;
    if (j > 0 && j - 1 < logits.shape(0)) {
      const xt::xtensor<float, 1> row = xt::view(logits, j - 1, xt::all());
      e = entry(tokens[j], log_softmax(row), offset);
    } else {
      e.token = token_text(tokens[j]);
      e.text_offset = offset;
    }
    logprobs_.push_back(std::move(e));
    if (offsets) offset += offsets->push(tokens[j]).size();
  }
}

bool CompletionChoice::add(int32_t token, const xt::xtensor<float, 1>& logits) {
  if (stopped_) return false;
  tokens_.push_back(token);
  if (top_ >= 0) logprobs_.push_back(entry(token, log_softmax(logits), text_.size()));
  if (stream_) append_text(stream_->push(token));
  return !stopped_;
}

void CompletionChoice::append_text(const std::string& more) {
  if (stopped_ || more.empty()) return;
  size_t longest = 0;
  for (const std::string& s : stops_) longest = std::max(longest, s.size());
  const size_t old_size = text_.size();
  text_ += more;
  // A stop string may straddle the old end: look from longest - 1 bytes before it.
  const size_t from =
      std::max(echo_size_, old_size - std::min(old_size, longest ? longest - 1 : 0));
  size_t cut = std::string::npos;
  for (const std::string& s : stops_) cut = std::min(cut, text_.find(s, from));
  if (cut != std::string::npos) {
    text_.resize(cut);
    ready_ = cut;
    stopped_ = true;
    return;
  }
  // Hold back an end of the text that a stop string could still begin with.
  size_t held = 0;
  const size_t generated = text_.size() - echo_size_;
  for (const std::string& s : stops_)
    for (size_t k = std::min(s.size() - 1, generated); k > held; --k)
      if (text_.compare(text_.size() - k, k, s, 0, k) == 0) {
        held = k;
        break;
      }
  ready_ = text_.size() - held;
}

void CompletionChoice::finish(FinishReason reason) {
  if (reason_) return;
  if (stream_ && !stopped_) append_text(stream_->finish());
  if (!stopped_) ready_ = text_.size();  // nothing more can complete a stop string
  reason_ = stopped_ ? FinishReason::kStop : reason;
}

const char* CompletionChoice::finish_reason() const {
  return reason_ ? finish_reason_name(*reason_) : nullptr;
}

}  // namespace ph::serve
