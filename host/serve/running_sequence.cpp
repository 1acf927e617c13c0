#include "host/serve/running_sequence.h"

#include <algorithm>
#include <cstdio>
#include <exception>
#include <string>

#include "host/serve/api_error.h"
#include "models/generate/generate.h"

namespace ph::serve {

namespace {

ApiError bad_request(const std::string& message, const std::string& param,
                     const std::string& code = "") {
  return ApiError(400, message, "invalid_request_error", param, code);
}

int prompt_positions(const SequenceRequest& s) {
  return s.prompt.injection->length() + (int)s.prompt.tokens.size();
}

// max_tokens, cut where the context ends (as generate() cuts it).
int token_budget(const Model& model, const SequenceRequest& s) {
  return std::min(s.max_tokens, model.config.max_positions - prompt_positions(s));
}

}  // namespace

void check_sequence_request(const Model& model, const SequenceRequest& s) {
  const ModelConfig& c = model.config;
  if (!s.prompt.injection) throw Error("a sequence request has no injection cache (null)");
  if (s.max_tokens < 0)
    throw bad_request("max_tokens must be >= 0, got " + std::to_string(s.max_tokens), "max_tokens");
  try {
    validate_sampling_options(s.sampling);
  } catch (const Error& e) {
    throw bad_request(e.what(), "");
  }
  const int rows = s.prompt.virtual_rows ? (int)s.prompt.virtual_rows->shape(0) : 0;
  if (s.prompt.virtual_rows && s.prompt.virtual_rows->shape(1) != size_t(c.dim))
    throw bad_request("the prompt's virtual rows have width " +
                          std::to_string(s.prompt.virtual_rows->shape(1)) + ", the model's is " +
                          std::to_string(c.dim),
                      "model");
  const auto& tokens = s.prompt.tokens;
  for (size_t i = 0; i < tokens.size(); ++i)
    if (is_virtual(tokens[i]) ? virtual_index(tokens[i]) >= rows : tokens[i] >= c.vocab_size)
      throw bad_request("token " + std::to_string(tokens[i]) + " at prompt position " +
                            std::to_string(i) + " is outside the model's vocabulary [0, " +
                            std::to_string(c.vocab_size) + ")" +
                            (is_virtual(tokens[i]) ? " and the adapter's virtual tokens" : ""),
                        "prompt");
  if (prompt_positions(s) > c.max_positions)
    throw bad_request("the prompt takes " + std::to_string(prompt_positions(s)) +
                          " positions (with the adapter's), more than the model's context of " +
                          std::to_string(c.max_positions),
                      "prompt", "context_length_exceeded");
  if (tokens.empty() && s.prompt.injection->last_logits().size() == 0)
    throw bad_request("empty prompt and no virtual tokens: nothing to continue from", "prompt");
}

RunningSequence::RunningSequence(const Model& model, uint64_t request, SequenceRequest sequence)
    : model_(model),
      request_(request),
      seq_(std::move(sequence)),
      sampler_(seq_.sampling, seq_.seed),
      budget_(token_budget(model, seq_)) {
  const int used = prompt_positions(seq_);
  const bool wants_prompt_logits = bool(seq_.on_prompt_logits);
  if (budget_ == 0 && (!wants_prompt_logits || seq_.prompt.tokens.empty())) {
    if (wants_prompt_logits) prompt_done();
    finish(FinishReason::kLength);
    return;
  }
  cache_ = seq_.prompt.injection->start(model_, used + std::max(budget_ - 1, 0));
  if (seq_.prompt.tokens.empty()) prompt_done();
}

DecodeItem RunningSequence::next_item(int chunk) {
  DecodeItem item;
  item.cache = &cache_;
  const auto& prompt = seq_.prompt.tokens;
  if (prefilled_ < prompt.size()) {
    fed_ = std::min(prompt.size() - prefilled_, (size_t)std::max(chunk, 1));
    item.tokens.assign(prompt.begin() + prefilled_, prompt.begin() + prefilled_ + fed_);
    item.virtual_rows = seq_.prompt.virtual_rows.get();
    item.all_logits = bool(seq_.on_prompt_logits);
  } else {
    fed_ = 1;
    item.tokens = {last_};
  }
  return item;
}

void RunningSequence::take_logits(const xt::xtensor<float, 2>& logits) {
  const size_t vocab = logits.shape(1);
  const bool prefilling = prefilled_ < seq_.prompt.tokens.size();
  if (!prefilling) {
    sample(logits.data());
    return;
  }
  prefilled_ += fed_;
  if (seq_.on_prompt_logits)
    prompt_logits_.insert(prompt_logits_.end(), logits.begin(), logits.end());
  if (prefilled_ < seq_.prompt.tokens.size()) return;
  prompt_done();
  if (budget_ == 0) {
    finish(FinishReason::kLength);
    return;
  }
  sample(logits.data() + (logits.shape(0) - 1) * vocab);
}

// The prompt is in the cache: on_prompt_logits gets its logits, and the first token
// comes from its last row (or from the injection's, for an empty prompt).
void RunningSequence::prompt_done() {
  const int vocab = model_.config.vocab_size;
  if (seq_.on_prompt_logits) {
    const size_t n = prompt_logits_.size() / vocab;
    xt::xtensor<float, 2> all = xt::empty<float>({n, (size_t)vocab});
    std::copy(prompt_logits_.begin(), prompt_logits_.end(), all.begin());
    std::vector<float>().swap(prompt_logits_);
    seq_.on_prompt_logits(all);
  }
  if (seq_.prompt.tokens.empty() && budget_ > 0)
    sample(seq_.prompt.injection->last_logits().data());
}

void RunningSequence::sample(const float* row) {
  const size_t vocab = model_.config.vocab_size;
  xt::xtensor<float, 1> logits = xt::empty<float>({vocab});
  std::copy(row, row + vocab, logits.begin());
  const int32_t token = sampler_.sample(logits);
  ++generated_;
  const bool go_on = seq_.on_token ? seq_.on_token(token, logits) : true;
  const auto& stops = seq_.stop_ids;
  if (!go_on || std::find(stops.begin(), stops.end(), token) != stops.end())
    finish(FinishReason::kStop);
  else if (generated_ == budget_)
    finish(FinishReason::kLength);
  last_ = token;
}

void RunningSequence::finish(FinishReason reason) {
  if (!reason_) reason_ = reason;
}

void RunningSequence::report_finish() {
  if (reported_) return;
  reported_ = true;
  cache_ = KVCache();  // freed now, not when the scheduler gets round to destroying it
  if (seq_.on_finish) seq_.on_finish(reason_.value_or(FinishReason::kCancelled));
}

}  // namespace ph::serve
