#include "host/serve/metrics.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>

namespace ph::serve {

namespace {

// The shortest text that reads back as `v` (0.005, not 0.0050000000000000001).
std::string number(double v) {
  char text[32];
  for (int digits = 6; digits <= 17; ++digits) {
    std::snprintf(text, sizeof text, "%.*g", digits, v);
    if (std::strtod(text, nullptr) == v) break;
  }
  return text;
}

void header(std::string& out, const char* name, const char* type, const char* help) {
  out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
}

}  // namespace

std::string prometheus_label(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), counts_(bounds_.size() + 1, 0) {}

void Histogram::observe(double value) {
  const size_t bucket = std::lower_bound(bounds_.begin(), bounds_.end(), value) - bounds_.begin();
  ++counts_[bucket];
  sum_ += value;
  ++count_;
}

void Histogram::render(const std::string& name, std::string& out) const {
  uint64_t cumulative = 0;
  for (size_t i = 0; i < bounds_.size(); ++i) {
    cumulative += counts_[i];
    out += name + "_bucket{le=\"" + number(bounds_[i]) + "\"} " + std::to_string(cumulative) + "\n";
  }
  out += name + "_bucket{le=\"+Inf\"} " + std::to_string(count_) + "\n";
  out += name + "_sum " + number(sum_) + "\n";
  out += name + "_count " + std::to_string(count_) + "\n";
}

Metrics::Metrics()
    : batch_size_({1, 2, 4, 8, 16, 32, 64, 128, 256}),
      time_to_first_token_({0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}) {}

void Metrics::count_request(const std::string& model, int status) {
  std::lock_guard<std::mutex> lock(mutex_);
  ++requests_[{model, status}];
}

void Metrics::count_tokens(uint64_t prompt_tokens, uint64_t generated_tokens) {
  std::lock_guard<std::mutex> lock(mutex_);
  prompt_tokens_ += prompt_tokens;
  generated_tokens_ += generated_tokens;
}

void Metrics::observe_step(const StepReport& step) {
  std::lock_guard<std::mutex> lock(mutex_);
  ++steps_;
  batch_size_.observe(step.sequences);
}

void Metrics::observe_time_to_first_token(double seconds) {
  std::lock_guard<std::mutex> lock(mutex_);
  time_to_first_token_.observe(seconds);
}

std::string Metrics::render(const SchedulerStats& now) const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::string out;
  header(out, "prompthost_requests_total", "counter",
         "HTTP requests answered, by model (adapter or base model) and status.");
  for (const auto& [key, count] : requests_)
    out += "prompthost_requests_total{model=\"" + prometheus_label(key.first) + "\",status=\"" +
           std::to_string(key.second) + "\"} " + std::to_string(count) + "\n";
  header(out, "prompthost_prompt_tokens_total", "counter", "Prompt tokens of completions.");
  out += "prompthost_prompt_tokens_total " + std::to_string(prompt_tokens_) + "\n";
  header(out, "prompthost_generation_tokens_total", "counter", "Tokens generated.");
  out += "prompthost_generation_tokens_total " + std::to_string(generated_tokens_) + "\n";
  header(out, "prompthost_queue_length", "gauge", "Sequences waiting for a slot.");
  out += "prompthost_queue_length " + std::to_string(now.queued) + "\n";
  header(out, "prompthost_active_sequences", "gauge", "Sequences being prefilled or decoded.");
  out += "prompthost_active_sequences " + std::to_string(now.active) + "\n";
  header(out, "prompthost_decode_steps_total", "counter", "Batched decoding steps run.");
  out += "prompthost_decode_steps_total " + std::to_string(steps_) + "\n";
  header(out, "prompthost_batch_size", "histogram", "Sequences in each decoding step.");
  batch_size_.render("prompthost_batch_size", out);
  header(out, "prompthost_time_to_first_token_seconds", "histogram",
         "From a request's arrival to its first generated token.");
  time_to_first_token_.render("prompthost_time_to_first_token_seconds", out);
  return out;
}

}  // namespace ph::serve
