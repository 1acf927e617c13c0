#include "models/generate/generate.h"

#include <algorithm>
#include <string>

#include <xtensor/xview.hpp>

#include "models/common/error.h"

namespace ph {

namespace {

std::string shape_string(const std::vector<size_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

template <class E>
std::vector<size_t> shape_of(const E& e) {
  return std::vector<size_t>(e.shape().begin(), e.shape().end());
}

void check_injection(const ModelConfig& c, const Injection& injection) {
  const auto& prefix = injection.prefix;
  if (prefix.size() > 0) {
    const std::vector<size_t> want = {size_t(c.n_layers), 2, size_t(c.n_kv_heads),
                                      prefix.shape()[3], size_t(c.head_dim)};
    if (shape_of(prefix) != want)
      throw Error("the injection's key/value prefix has shape " + shape_string(shape_of(prefix)) +
                  ", the model needs " + shape_string(want) +
                  " ([layers, 2, kv_heads, n_prefix, head_dim])");
  }
  const auto& virt = injection.virtual_tokens;
  if (virt.size() > 0) {
    if (virt.shape()[0] != 1)
      throw Error("the injection has one set of virtual tokens per example (" +
                  shape_string(shape_of(virt)) + "); generation needs one shared set, [1, n, dim]");
    if (virt.shape()[2] != size_t(c.dim))
      throw Error("the injection's virtual tokens have width " + std::to_string(virt.shape()[2]) +
                  ", the model's is " + std::to_string(c.dim));
  }
}

}  // namespace

InjectionCache::InjectionCache(const Model& model, const Injection& injection) {
  const ModelConfig& c = model.config;
  check_injection(c, injection);
  const int n_prefix = injection.prefix.size() > 0 ? int(injection.prefix.shape()[3]) : 0;
  const int n_virtual =
      injection.virtual_tokens.size() > 0 ? int(injection.virtual_tokens.shape()[1]) : 0;
  // LLaMA-Adapter's prompts through each adapted layer's k/v projection: computed once,
  // handed to every request's cache
  KVCache adapters;
  append_adapters(model, adapters, injection);
  adapter_kv_ = std::move(adapters.adapter_kv);
  adapter_gates_ = std::move(adapters.adapter_gates);
  if (n_prefix + n_virtual == 0) return;
  if (n_prefix + n_virtual > c.max_positions)
    throw Error("the injection takes " + std::to_string(n_prefix + n_virtual) + " positions (" +
                std::to_string(n_prefix) + " prefix + " + std::to_string(n_virtual) +
                " virtual tokens), more than the model's context of " +
                std::to_string(c.max_positions));

  cache_ = make_kv_cache(model, n_prefix + n_virtual);
  cache_.adapter_kv = adapter_kv_;
  cache_.adapter_gates = adapter_gates_;
  if (n_prefix > 0) append_prefix(cache_, injection.prefix);
  if (n_virtual > 0) {
    std::vector<int32_t> slots(n_virtual);
    for (int k = 0; k < n_virtual; ++k) slots[k] = virtual_slot(k);
    const xt::xtensor<float, 2> rows = xt::view(injection.virtual_tokens, 0, xt::all(), xt::all());
    last_logits_ = extend(model, cache_, slots, rows);
  }
}

KVCache InjectionCache::start(const Model& model, int capacity) const {
  const ModelConfig& c = model.config;
  if (capacity < cache_.length)
    throw Error("a request cache of " + std::to_string(capacity) +
                " positions cannot hold the injection's " + std::to_string(cache_.length));
  KVCache out = make_kv_cache(model, capacity);
  out.adapter_kv = adapter_kv_;
  out.adapter_gates = adapter_gates_;
  if (cache_.length == 0) return out;

  const std::vector<size_t> want = {size_t(c.n_kv_heads), size_t(capacity), size_t(c.head_dim)};
  if (cache_.keys.size() != size_t(c.n_layers) || out.keys.size() != size_t(c.n_layers) ||
      shape_of(out.keys[0]) != want || shape_of(cache_.keys[0])[2] != size_t(c.head_dim))
    throw Error("the injection cache was built for a model of another geometry");
  const int n = cache_.length;
  for (int l = 0; l < c.n_layers; ++l) {
    xt::view(out.keys[l], xt::all(), xt::range(0, n), xt::all()) =
        xt::view(cache_.keys[l], xt::all(), xt::range(0, n), xt::all());
    xt::view(out.values[l], xt::all(), xt::range(0, n), xt::all()) =
        xt::view(cache_.values[l], xt::all(), xt::range(0, n), xt::all());
  }
  out.length = cache_.length;
  return out;
}

std::vector<int32_t> stop_ids(const ModelConfig& c, int32_t tokenizer_eos) {
  std::vector<int32_t> ids;
  const int32_t eos = c.eos_id >= 0 ? c.eos_id : tokenizer_eos;
  if (eos >= 0) ids.push_back(eos);
  if (c.bos_ends_text && c.bos_id >= 0) ids.push_back(c.bos_id);
  return ids;
}

std::vector<int32_t> generate(const Model& model, const InjectionCache& injection,
                              const std::vector<int32_t>& prompt, const GenerateOptions& options) {
  const ModelConfig& c = model.config;
  if (options.max_new_tokens < 0)
    throw Error("max_new_tokens must be >= 0, got " + std::to_string(options.max_new_tokens));
  const int n_virtual = options.virtual_tokens.size() ? (int)options.virtual_tokens.shape(0) : 0;
  for (size_t i = 0; i < prompt.size(); ++i)
    if (is_virtual(prompt[i]) ? virtual_index(prompt[i]) >= n_virtual : prompt[i] >= c.vocab_size)
      throw Error("token id " + std::to_string(prompt[i]) + " at prompt position " +
                  std::to_string(i) + " is outside the model's vocabulary [0, " +
                  std::to_string(c.vocab_size) + ")");
  const int used = injection.length() + static_cast<int>(prompt.size());
  if (used > c.max_positions)
    throw Error("the prompt (" + std::to_string(prompt.size()) + " tokens" +
                (injection.length() > 0
                     ? ") plus the injection (" + std::to_string(injection.length()) + " positions"
                     : std::string()) +
                ") is longer than the model's context of " + std::to_string(c.max_positions) +
                " positions");
  if (prompt.empty() && injection.last_logits().size() == 0)
    throw Error("empty prompt and no virtual tokens: nothing to continue from");
  Sampler sampler(options.sampling, options.seed);

  // Every generated token takes a position too, so the context bounds how many fit.
  const int budget = std::min(options.max_new_tokens, c.max_positions - used);
  std::vector<int32_t> out;
  if (budget == 0) return out;
  // The last generated token is never fed back, so it needs no room in the cache.
  KVCache cache = injection.start(model, used + budget - 1);
  xt::xtensor<float, 1> logits = prompt.empty()
                                     ? injection.last_logits()
                                     : extend(model, cache, prompt, options.virtual_tokens);
  for (;;) {
    const int32_t token = sampler.sample(logits);
    out.push_back(token);
    if (options.on_token) options.on_token(token, logits);
    const auto& stops = options.stop_ids;
    if (std::find(stops.begin(), stops.end(), token) != stops.end() ||
        static_cast<int>(out.size()) == budget)
      break;
    logits = extend(model, cache, {token});
  }
  return out;
}

}  // namespace ph
