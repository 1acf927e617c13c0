// KV caches and incremental decoding: new tokens' keys and values are appended to the
// cache (a prefix, earlier tokens), and each attends to the cache up to itself.
#include <algorithm>
#include <string>

#include <xtensor/xview.hpp>

#include "models/common/error.h"
#include "models/engine/batch_decode.h"
#include "models/engine/engine.h"
#include "models/engine/pass_common.h"

namespace ph {

KVCache make_kv_cache(const Model& model, int capacity) {
  const ModelConfig& c = model.config;
  if (capacity <= 0 || capacity > c.max_positions)
    throw Error("KV cache capacity " + std::to_string(capacity) + " is outside 1.." +
                std::to_string(c.max_positions) + " (the model's context)");
  KVCache cache;
  cache.capacity = capacity;
  for (int l = 0; l < c.n_layers; ++l) {
    cache.keys.push_back(xt::zeros<float>({c.n_kv_heads, capacity, c.head_dim}));
    cache.values.push_back(xt::zeros<float>({c.n_kv_heads, capacity, c.head_dim}));
  }
  return cache;
}

void append_prefix(KVCache& cache, const xt::xtensor<float, 5>& prefix) {
  if (prefix.size() == 0) return;
  const int n = (int)prefix.shape(3);
  if (cache.length != 0) throw Error("append_prefix: the cache is not empty");
  if (prefix.shape(0) != cache.keys.size() || prefix.shape(2) != cache.keys[0].shape(0) ||
      prefix.shape(4) != cache.keys[0].shape(2))
    throw Error("append_prefix: the prefix's shape does not match the model");
  if (n > cache.capacity)
    throw Error("append_prefix: a prefix of " + std::to_string(n) +
                " positions does not fit a cache of " + std::to_string(cache.capacity));
  for (size_t l = 0; l < cache.keys.size(); ++l)
    for (size_t g = 0; g < prefix.shape(2); ++g)
      for (int j = 0; j < n; ++j)
        for (size_t i = 0; i < prefix.shape(4); ++i) {
          cache.keys[l](g, j, i) = prefix(l, 0, g, j, i);
          cache.values[l](g, j, i) = prefix(l, 1, g, j, i);
        }
  cache.length = n;
}

void append_adapters(const Model& model, KVCache& cache, const Injection& injection) {
  const ModelConfig& c = model.config;
  if (injection.adapter_prompts.size() == 0) return;
  Injection adapters;  // checked alone: the cache's other parts are already in place
  adapters.adapter_prompts = injection.adapter_prompts;
  adapters.adapter_gates = injection.adapter_gates;
  check_injection_shapes(c, adapters);
  cache.adapter_kv.assign(c.n_layers, xt::xtensor<float, 2>());
  cache.adapter_gates.assign(c.n_layers, 0.0f);
  const std::vector<AdapterBranch> branches = adapter_branches(c, adapters, nullptr);
  for (int l = 0; l < c.n_layers; ++l) {
    if (branches[l].len == 0) continue;
    AdapterActivations acts;
    adapter_project(c, model.layers[l], branches[l], acts);
    cache.adapter_kv[l] = std::move(acts.kv);
    cache.adapter_gates[l] = branches[l].gate;
  }
}

// One sequence through the batched decoder: `prompthost generate`, the injection caches
// and the server then share one path (and agree token for token).
xt::xtensor<float, 1> extend(const Model& model, KVCache& cache, const std::vector<int32_t>& tokens,
                             const xt::xtensor<float, 2>& virtual_tokens) {
  DecodeItem item;
  item.cache = &cache;
  item.tokens = tokens;
  item.virtual_rows = virtual_tokens.size() > 0 ? &virtual_tokens : nullptr;
  std::vector<xt::xtensor<float, 2>> logits;
  BatchDecoder(model).step({item}, logits);
  return xt::view(logits[0], 0, xt::all());
}

}  // namespace ph
