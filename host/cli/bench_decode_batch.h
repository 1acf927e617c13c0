// `prompthost bench --workload decode-batch`: BatchDecoder steps over many sequences at
// once, the kernel side of continuous batching (the server's scheduler adds admission,
// sampling and prefill chunks on top).
#pragma once

#include <cstdint>

#include <nlohmann/json.hpp>

#include "models/engine/model.h"

namespace ph::cli {

// For 1, 4, 16, 64 rows (those < max_rows, and max_rows itself): that many sequences,
// each with a cache holding `prompt` positions (random keys and values) and 1 + `warmup`
// untimed and `steps` timed greedy decoding steps of one token per sequence. Returns the JSON keys:
// per row count the decode tokens/s, the step time, the GFLOP/s of its products and attention, the
// speed-up over one row, and the GFLOP/s as a fraction of an SGEMM rate measured in the same run.
nlohmann::json bench_decode_batch(const Model& model, int max_rows, int prompt, int warmup,
                                  int steps, uint64_t seed);

}  // namespace ph::cli
