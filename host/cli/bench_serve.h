// `prompthost bench --workload serve`: the server's continuous batching, in process (a
// Scheduler, no HTTP), over adapters with random prompt-tuning and prefix injections.
#pragma once

#include <cstdint>
#include <vector>

#include <nlohmann/json.hpp>

#include "models/engine/model.h"

namespace ph::cli {

struct ServeBenchOptions {
  std::vector<int> streams = {1, 4, 16, 64};  // concurrent requests, one level each
  int adapters = 8;                           // injections, alternately prompt tuning and prefix
  int virtual_tokens = 20;                    // each one's virtual tokens or prefix length
  int prompt_tokens = 32;                     // random tokens per request
  int new_tokens = 64;                        // generated per request (greedy, no stop id)
  int alone_requests = 4;  // how many of a level's requests also run one at a time
  uint64_t seed = 0;
};

// Per level: aggregate decode tokens/s and time to first token (p50, p99) with that many
// requests at once, next to the rate and TTFT of the same requests (the first
// alone_requests of them) one at a time; the speed-up; and the fraction of this machine's
// compute bound (its SGEMM rate over 2 flops per weight per token, `weight_bytes_per_token`
// / 2). Prints a table as it goes; returns the JSON keys.
nlohmann::json bench_serve(const Model& model, const ServeBenchOptions& options,
                           double weight_bytes_per_token);

}  // namespace ph::cli
