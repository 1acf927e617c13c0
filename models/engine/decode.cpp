// KV-cached incremental decoding: new tokens attend to the cache (a prefix, earlier
// tokens), then their keys and values are appended to it.
#include <algorithm>
#include <string>

#include "models/common/error.h"
#include "models/engine/alibi.h"
#include "models/engine/embedding.h"
#include "models/engine/engine.h"
#include "models/engine/linear.h"
#include "models/engine/transformer_layer.h"

namespace ph {

namespace {

// One rotary table per model shape, shared by every call (decoding calls extend per token).
// It covers the positions a cache can hold, not the model's whole context: a context of
// millions of positions would otherwise cost gigabytes on every request.
const RopeTable& rope_for(const ModelConfig& c, int positions) {
  thread_local RopeTable table;
  thread_local float theta = 0.0f;
  if (theta != c.rope_theta || table.head_dim != c.head_dim) {
    table = RopeTable{};
    theta = c.rope_theta;
  }
  table.ensure(positions, c.head_dim, c.rope_theta);
  return table;
}

}  // namespace

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

xt::xtensor<float, 1> extend(const Model& model, KVCache& cache, const std::vector<int32_t>& tokens,
                             const xt::xtensor<float, 2>& virtual_tokens) {
  const ModelConfig& c = model.config;
  const int T = (int)tokens.size(), D = c.dim;
  if (T == 0) throw Error("extend: no tokens");
  if (!model.head.w)
    throw Error(std::string("extend: the ") + task_type_name(c.task) +
                " model has no language-model head to decode with");
  if (cache.length + T > cache.capacity)
    throw Error("extend: " + std::to_string(cache.length + T) +
                " positions exceed the cache's capacity of " + std::to_string(cache.capacity) +
                " (the context is " + std::to_string(c.max_positions) + ")");
  BatchLayout layout;
  layout.rows = T;
  layout.segments.push_back({0, T, false});
  xt::xtensor<float, 2> x = xt::empty<float>({T, D});
  for (int t = 0; t < T; ++t) {
    const int32_t tok = tokens[t];
    const float* vrow = nullptr;
    if (is_virtual(tok)) {
      if (virtual_tokens.size() == 0 || virtual_index(tok) >= (int)virtual_tokens.shape(0))
        throw Error("extend: virtual slot " + std::to_string(virtual_index(tok)) +
                    " has no virtual token");
      vrow = &virtual_tokens(virtual_index(tok), 0);
    } else if (tok >= c.vocab_size) {
      throw Error("token id " + std::to_string(tok) + " is outside the vocabulary of " +
                  std::to_string(c.vocab_size));
    }
    layout.positions.push_back(cache.length + t);
    embed_row(model, tok, vrow, cache.length + t, &x(t, 0));
  }
  InputNorm().forward(model, x);
  // ALiBi over the positions the cache and the new tokens take (the cache's keys at 0..)
  AlibiTable alibi;
  if (c.alibi_positions()) layout.bias = alibi.ensure(c.n_heads, cache.length + T);
  const RopeTable& rope = rope_for(c, cache.capacity);
  const int qd = c.q_dim(), kvd = c.kv_dim(), hd = c.head_dim;
  LayerActivations acts;
  LayerScratch scratch;
  xt::xtensor<float, 2> y;
  for (int l = 0; l < c.n_layers; ++l) {
    std::vector<KVSpan> external;
    if (cache.length > 0) {
      KVSpan s;
      s.k = cache.keys[l].data();
      s.v = cache.values[l].data();
      s.n = cache.length;
      s.pos_stride = hd;
      s.head_stride = (size_t)cache.capacity * hd;
      external.push_back(s);
    }
    TransformerLayer(model, l, rope).forward(layout, external, x, acts, y, scratch);
    std::swap(x, y);
    for (int t = 0; t < T; ++t)
      for (int g = 0; g < c.n_kv_heads; ++g) {
        std::copy_n(&acts.qkv(t, qd + g * hd), hd, &cache.keys[l](g, cache.length + t, 0));
        std::copy_n(&acts.qkv(t, qd + kvd + g * hd), hd, &cache.values[l](g, cache.length + t, 0));
      }
  }
  cache.length += T;
  xt::xtensor<float, 1> normed = xt::empty<float>({D});
  float mean, rstd;
  norm_forward(model.final_norm, c.norm_eps, 1, D, &x(T - 1, 0), normed.data(), &mean, &rstd);
  xt::xtensor<float, 1> logits = xt::empty<float>({c.vocab_size});
  linear_forward(model.head, 1, normed.data(), D, logits.data(), c.vocab_size);
  return logits;
}

}  // namespace ph
