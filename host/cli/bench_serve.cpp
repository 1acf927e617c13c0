#include "host/cli/bench_serve.h"

#include <time.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <memory>
#include <mutex>

#include "host/serve/scheduler.h"
#include "models/common/error.h"
#include "models/engine/machine.h"
#include "models/generate/generate.h"

namespace ph::cli {

namespace {

using Clock = std::chrono::steady_clock;
using serve::FinishReason;
using serve::Scheduler;
using serve::SequenceRequest;

double round2(double v) {
  return std::round(v * 100) / 100;
}

// Uniform in [-scale, scale]: any values will do, the benchmark times the arithmetic.
void fill_random(float* begin, float* end, Rng& rng, float scale) {
  for (float* p = begin; p != end; ++p) *p = scale * float(2 * rng.next_double() - 1);
}

// Adapter k: prompt tuning (virtual tokens) when k is even, prefix tuning when odd.
std::shared_ptr<const InjectionCache> random_injection(const Model& model, int k, int n, Rng& rng) {
  const ModelConfig& c = model.config;
  Injection injection;
  if (k % 2 == 0) {
    injection.virtual_tokens = xt::empty<float>({size_t(1), size_t(n), size_t(c.dim)});
    auto& v = injection.virtual_tokens;
    fill_random(v.data(), v.data() + v.size(), rng, 0.05f);
  } else {
    injection.prefix = xt::empty<float>(
        {size_t(c.n_layers), size_t(2), size_t(c.n_kv_heads), size_t(n), size_t(c.head_dim)});
    auto& p = injection.prefix;
    fill_random(p.data(), p.data() + p.size(), rng, 1.0f);
  }
  return std::make_shared<const InjectionCache>(model, injection);
}

// CPU time of the whole process (all threads), seconds: on a shared machine, tokens per
// CPU second compare the batched and the one-at-a-time runs whatever else runs.
double process_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

// What one request saw: when it was submitted, when its first token came, how many.
struct Timing {
  Clock::time_point submitted, first_token;
  int tokens = 0;
};

// Runs `requests` (all submitted at once) to their end; returns the wall time, seconds.
class Batch {
 public:
  // Adds the run's CPU time to *cpu_seconds.
  double run(Scheduler& scheduler, const std::vector<SequenceRequest>& requests,
             std::vector<Timing>& timings, double* cpu_seconds = nullptr) {
    const double cpu0 = process_cpu_seconds();
    timings.assign(requests.size(), {});
    left_ = (int)requests.size();
    const auto t0 = Clock::now();
    for (size_t i = 0; i < requests.size(); ++i) {
      SequenceRequest r = requests[i];
      Timing& t = timings[i];
      r.on_token = [&t](int32_t, const xt::xtensor<float, 1>&) {
        if (t.tokens++ == 0) t.first_token = Clock::now();
        return true;
      };
      r.on_finish = [this](FinishReason) {
        std::lock_guard<std::mutex> lock(mutex_);
        if (--left_ == 0) done_.notify_all();
      };
      t.submitted = Clock::now();
      std::vector<SequenceRequest> one;
      one.push_back(std::move(r));
      if (scheduler.submit(std::move(one)) == 0) throw Error("bench serve: a request was refused");
    }
    std::unique_lock<std::mutex> lock(mutex_);
    done_.wait(lock, [this] { return left_ == 0; });
    if (cpu_seconds) *cpu_seconds += process_cpu_seconds() - cpu0;
    return std::chrono::duration<double>(Clock::now() - t0).count();
  }

 private:
  std::mutex mutex_;
  std::condition_variable done_;
  int left_ = 0;
};

double percentile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  const double at = q * (v.size() - 1);
  const size_t lo = (size_t)std::floor(at), hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (v[hi] - v[lo]) * (at - lo);
}

std::vector<double> ttft_ms(const std::vector<Timing>& timings) {
  std::vector<double> out;
  for (const Timing& t : timings)
    out.push_back(std::chrono::duration<double, std::milli>(t.first_token - t.submitted).count());
  return out;
}

int total_tokens(const std::vector<Timing>& timings) {
  int n = 0;
  for (const Timing& t : timings) n += t.tokens;
  return n;
}

}  // namespace

nlohmann::json bench_serve(const Model& model, const ServeBenchOptions& o,
                           double weight_bytes_per_token) {
  const ModelConfig& c = model.config;
  Rng rng(o.seed + 1);
  std::vector<std::shared_ptr<const InjectionCache>> injections;
  for (int k = 0; k < o.adapters; ++k)
    injections.push_back(random_injection(model, k, o.virtual_tokens, rng));
  const int widest = *std::max_element(o.streams.begin(), o.streams.end());
  if (o.virtual_tokens + o.prompt_tokens + o.new_tokens > c.max_positions)
    throw Error("--virtual + --seq + --new exceed the model's context of " +
                std::to_string(c.max_positions));

  serve::SchedulerOptions so;
  so.max_sequences = widest;
  so.max_queue = widest;
  Scheduler scheduler(model, so);
  // The compute bound: every weight is multiplied once per token (2 flops).
  const double sgemm = measure_sgemm_gflops();
  const double compute_bound = sgemm * 1e9 / (weight_bytes_per_token / 2);

  // Warm-up (page faults, the pool's threads), untimed.
  std::vector<SequenceRequest> warmup(std::min(widest, 4));
  for (size_t i = 0; i < warmup.size(); ++i) {
    warmup[i].prompt.injection = injections[i % o.adapters];
    warmup[i].prompt.tokens = {1, 2, 3};
    warmup[i].max_tokens = 2;
    warmup[i].sampling.temperature = 0;
  }
  std::vector<Timing> unused;
  Batch().run(scheduler, warmup, unused);

  nlohmann::json levels = nlohmann::json::array();
  std::printf("%8s %14s %12s %12s %14s %14s %8s %9s %12s\n", "streams", "tokens/s", "ttft p50 ms",
              "ttft p99 ms", "alone tok/s", "alone ttft ms", "speedup", "of bound", "cpu speedup");
  for (int streams : o.streams) {
    std::vector<SequenceRequest> requests(streams);
    for (int i = 0; i < streams; ++i) {
      SequenceRequest& r = requests[i];
      r.prompt.injection = injections[i % o.adapters];
      for (int t = 0; t < o.prompt_tokens; ++t)
        r.prompt.tokens.push_back(int32_t(rng.next_u64() % c.vocab_size));
      r.max_tokens = o.new_tokens;
      r.sampling.temperature = 0;
    }
    std::vector<Timing> together, alone, one;
    Batch batch;
    double cpu = 0, alone_cpu = 0, alone_wall = 0;
    const double wall = batch.run(scheduler, requests, together, &cpu);
    for (int i = 0; i < std::min(streams, o.alone_requests); ++i) {
      alone_wall += batch.run(scheduler, {requests[i]}, one, &alone_cpu);
      alone.push_back(one[0]);
    }
    const double rate = total_tokens(together) / wall;
    const double alone_rate = total_tokens(alone) / alone_wall;
    const std::vector<double> ttft = ttft_ms(together), alone_ttft = ttft_ms(alone);
    nlohmann::json level = {
        {"streams", streams},
        {"decode_tokens_per_s", round2(rate)},
        {"ttft_ms_p50", round2(percentile(ttft, 0.5))},
        {"ttft_ms_p99", round2(percentile(ttft, 0.99))},
        {"alone_requests", alone.size()},
        {"alone_tokens_per_s", round2(alone_rate)},
        {"alone_ttft_ms_p50", round2(percentile(alone_ttft, 0.5))},
        {"speedup", round2(rate / alone_rate)},
        {"decode_tokens_per_cpu_s", round2(total_tokens(together) / cpu)},
        {"alone_tokens_per_cpu_s", round2(total_tokens(alone) / alone_cpu)},
        {"cpu_speedup", round2(total_tokens(together) / cpu / (total_tokens(alone) / alone_cpu))},
        {"compute_fraction", round2(rate / compute_bound)}};
    std::printf("%8d %14.1f %12.1f %12.1f %14.1f %14.1f %7.2fx %8.0f%% %11.2fx\n", streams, rate,
                percentile(ttft, 0.5), percentile(ttft, 0.99), alone_rate,
                percentile(alone_ttft, 0.5), rate / alone_rate, 100 * rate / compute_bound,
                level["cpu_speedup"].get<double>());
    std::fflush(stdout);
    levels.push_back(level);
  }
  return {{"workload", "serve"},
          {"adapters", o.adapters},
          {"virtual", o.virtual_tokens},
          {"prompt_tokens", o.prompt_tokens},
          {"new_tokens", o.new_tokens},
          {"sgemm_gflops", round2(sgemm)},
          {"compute_bound_tokens_per_s", round2(compute_bound)},
          {"levels", levels}};
}

}  // namespace ph::cli
