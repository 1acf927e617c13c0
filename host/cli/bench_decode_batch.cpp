#include "host/cli/bench_decode_batch.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <random>
#include <vector>

#include "models/engine/batch_decode.h"
#include "models/engine/machine.h"

namespace ph::cli {

namespace {

struct RowsResult {
  double tokens_per_s = 0.0, step_ms = 0.0, gflops = 0.0;
};

int32_t argmax(const float* logits, int n) {
  return (int32_t)(std::max_element(logits, logits + n) - logits);
}

RowsResult time_rows(const Model& model, int rows, int prompt, int warmup, int steps,
                     uint64_t seed) {
  const ModelConfig& c = model.config;
  std::mt19937_64 rng(seed);
  // The caches start with `prompt` positions of random keys and values: the attention
  // reads as much as after a real prompt (prefilling 64 prompts would only take time).
  std::vector<KVCache> caches(rows);
  std::vector<DecodeItem> items(rows);
  uint32_t state = (uint32_t)seed;
  auto value = [&] {  // a cheap generator in [-1, 1): the values only have to vary
    state = state * 1664525u + 1013904223u;
    return (float)(state >> 8) * (2.0f / 16777216.0f) - 1.0f;
  };
  for (int r = 0; r < rows; ++r) {
    caches[r] = make_kv_cache(model, std::min(c.max_positions, prompt + 1 + warmup + steps));
    for (auto* part : {&caches[r].keys, &caches[r].values})
      for (auto& t : *part)
        for (auto& v : t) v = value();
    caches[r].length = prompt;
    items[r].cache = &caches[r];
    items[r].tokens = {(int32_t)(rng() % c.vocab_size)};
  }
  BatchDecoder decoder(model);
  std::vector<xt::xtensor<float, 2>> logits;
  decoder.step(items, logits);
  auto next_tokens = [&] {
    for (int r = 0; r < rows; ++r) items[r].tokens = {argmax(logits[r].data(), c.vocab_size)};
  };
  for (int w = 0; w < warmup; ++w) {
    next_tokens();
    decoder.step(items, logits);
  }
  double flops = 0.0;
  const auto t0 = std::chrono::steady_clock::now();
  for (int s = 0; s < steps; ++s) {
    next_tokens();
    decoder.step(items, logits);
    flops += decoder.last_step_flops();
  }
  const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return {rows * steps / dt, dt / steps * 1e3, flops / dt * 1e-9};
}

double round2(double v) {
  return std::round(v * 100) / 100;
}

}  // namespace

nlohmann::json bench_decode_batch(const Model& model, int max_rows, int prompt, int warmup,
                                  int steps, uint64_t seed) {
  std::vector<int> counts;
  for (int rows : {1, 4, 16, 64})
    if (rows < max_rows) counts.push_back(rows);
  counts.push_back(max_rows);
  nlohmann::json tokens = nlohmann::json::array(), step_ms = nlohmann::json::array(),
                 gflops = nlohmann::json::array(), speedup = nlohmann::json::array();
  std::vector<RowsResult> results;
  for (int rows : counts) {
    results.push_back(time_rows(model, rows, prompt, warmup, steps, seed));
    tokens.push_back(round2(results.back().tokens_per_s));
    step_ms.push_back(round2(results.back().step_ms));
    gflops.push_back(round2(results.back().gflops));
    speedup.push_back(round2(results.back().tokens_per_s / results[0].tokens_per_s));
  }
  const double sgemm = measure_sgemm_gflops();
  nlohmann::json fraction = nlohmann::json::array();
  for (const auto& r : results) fraction.push_back(round2(r.gflops / sgemm));
  return {{"workload", "decode-batch"},
          {"prompt_tokens", prompt},
          {"steps", steps},
          {"rows", counts},
          {"tokens_per_s", tokens},
          {"step_ms", step_ms},
          {"gflops", gflops},
          {"speedup", speedup},
          {"sgemm_gflops", round2(sgemm)},
          {"sgemm_fraction", fraction}};
}

}  // namespace ph::cli
