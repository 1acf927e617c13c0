// The server's counters, rendered as Prometheus text (GET /metrics, format 0.0.4):
// requests by model (the adapter, or the base model) and HTTP status, prompt and
// generated tokens, the queue length and active sequences at the time of the scrape,
// and histograms of the batch size of each decoding step and of the time to first token.
// Thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "host/serve/scheduler.h"

namespace ph::serve {

class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);  // upper bounds, increasing
  void observe(double value);
  // Prometheus lines for `name` (cumulative _bucket{le=...}, _sum, _count).
  void render(const std::string& name, std::string& out) const;
  uint64_t count() const { return count_; }

 private:
  std::vector<double> bounds_;
  std::vector<uint64_t> counts_;  // per bound, not cumulative; one more for +Inf
  double sum_ = 0;
  uint64_t count_ = 0;
};

class Metrics {
 public:
  Metrics();
  void count_request(const std::string& model, int status);
  void count_tokens(uint64_t prompt_tokens, uint64_t generated_tokens);
  void observe_step(const StepReport& step);
  void observe_time_to_first_token(double seconds);
  std::string render(const SchedulerStats& now) const;

 private:
  mutable std::mutex mutex_;
  std::map<std::pair<std::string, int>, uint64_t> requests_;
  uint64_t prompt_tokens_ = 0;
  uint64_t generated_tokens_ = 0;
  uint64_t steps_ = 0;
  Histogram batch_size_;
  Histogram time_to_first_token_;
};

// `text` as a Prometheus label value: backslash, double quote and newline escaped.
std::string prometheus_label(const std::string& text);

}  // namespace ph::serve
