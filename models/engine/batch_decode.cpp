// BatchDecoder: the pre-norm decoder block (TransformerLayer's forward_pre_norm) over
// the packed rows of a decoding step, with the decoding kernels (decode_kernels.h) in
// place of the batch-dependent BLAS products and attention. The family recipe is read
// from the config exactly as TransformerLayer reads it; the norms, the rotary embedding
// and the activations are the same kernels (kernels.h), all row by row.
#include "models/engine/batch_decode.h"

#include <algorithm>
#include <set>
#include <string>

#include "models/common/error.h"
#include "models/engine/adapter_attention.h"
#include "models/engine/alibi.h"
#include "models/engine/decode_kernels.h"
#include "models/engine/embedding.h"
#include "models/engine/kernels.h"

namespace ph {

namespace {

// One rotary table per model shape, shared by every decoder of the calling thread
// (extend() makes a decoder per call). It covers the positions the caches can hold, not
// the model's whole context: a context of millions of positions would otherwise cost
// gigabytes.
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

std::string item_name(size_t i) {
  return "decode item " + std::to_string(i);
}

// What the engine can decode: a causal pre-norm decoder with a language-model head.
void check_model(const ModelConfig& c, const Model& model) {
  if (c.stacks != Stacks::kDecoder || c.post_norm || c.positions == Positions::kRelative)
    throw Error(std::string("batched decoding: a ") + arch_name(c.arch) +
                " model is not a causal decoder (encoder-decoders decode with generate_seq2seq)");
  if (!model.head.w)
    throw Error(std::string("batched decoding: the ") + task_type_name(c.task) +
                " model has no language-model head to decode with");
}

void check_cache(const ModelConfig& c, const KVCache& cache, const std::string& name) {
  const std::vector<size_t> want = {size_t(c.n_kv_heads), size_t(cache.capacity),
                                    size_t(c.head_dim)};
  bool ok = cache.capacity > 0 && cache.capacity <= c.max_positions && cache.length >= 0 &&
            cache.length <= cache.capacity && cache.keys.size() == size_t(c.n_layers) &&
            cache.values.size() == size_t(c.n_layers);
  for (size_t l = 0; ok && l < cache.keys.size(); ++l)
    ok =
        std::vector<size_t>(cache.keys[l].shape().begin(), cache.keys[l].shape().end()) == want &&
        std::vector<size_t>(cache.values[l].shape().begin(), cache.values[l].shape().end()) == want;
  ok = ok && (cache.adapter_kv.empty() || (cache.adapter_kv.size() == size_t(c.n_layers) &&
                                            cache.adapter_gates.size() == size_t(c.n_layers)));
  for (size_t l = 0; ok && l < cache.adapter_kv.size(); ++l)
    ok = cache.adapter_kv[l].size() == 0 || cache.adapter_kv[l].shape(1) == size_t(c.qkv_dim());
  if (!ok)
    throw Error(name +
                ": the KV cache does not fit the model (make it with make_kv_cache or "
                "InjectionCache::start for this model)");
}

void check_item(const ModelConfig& c, const DecodeItem& item, const std::string& name) {
  if (!item.cache) throw Error(name + " has no cache");
  check_cache(c, *item.cache, name);
  const int T = (int)item.tokens.size();
  if (T == 0) throw Error(name + " has no tokens");
  const KVCache& cache = *item.cache;
  if (cache.length + T > cache.capacity)
    throw Error(name + ": " + std::to_string(cache.length + T) +
                " positions exceed the cache's capacity of " + std::to_string(cache.capacity) +
                " (the context is " + std::to_string(c.max_positions) + ")");
  const xt::xtensor<float, 2>* rows = item.virtual_rows;
  const int n_virtual = rows && rows->size() > 0 ? (int)rows->shape(0) : 0;
  if (n_virtual > 0 && rows->shape(1) != size_t(c.dim))
    throw Error(name + ": the virtual rows have width " + std::to_string(rows->shape(1)) +
                ", the model's is " + std::to_string(c.dim));
  for (int t = 0; t < T; ++t) {
    const int32_t tok = item.tokens[t];
    if (is_virtual(tok) && virtual_index(tok) >= n_virtual)
      throw Error(name + ": virtual slot " + std::to_string(virtual_index(tok)) + " at token " +
                  std::to_string(t) + " has no virtual row (" + std::to_string(n_virtual) +
                  " given)");
    if (!is_virtual(tok) && tok >= c.vocab_size)
      throw Error(name + ": token id " + std::to_string(tok) + " at token " + std::to_string(t) +
                  " is outside the vocabulary of " + std::to_string(c.vocab_size));
  }
}

}  // namespace

class BatchDecoderImpl {
 public:
  explicit BatchDecoderImpl(const Model& model) : model(model) {}

  void check(const std::vector<DecodeItem>& items) const;
  void forward(const std::vector<DecodeItem>& items, std::vector<xt::xtensor<float, 2>>& logits);

  const Model& model;
  double flops = 0.0;

 private:
  void embed(const std::vector<DecodeItem>& items);
  void layer(int l, const std::vector<DecodeItem>& items, const RopeTable* rope,
             const DistanceBias* bias);
  void head(const std::vector<DecodeItem>& items, std::vector<xt::xtensor<float, 2>>& logits);
  void adapters(int l, const std::vector<DecodeItem>& items);

  // Per row of the step: its item and its position (the cache's length before the step
  // plus its index among the item's tokens).
  std::vector<int> row_item, positions;
  // The residual stream [rows, dim] and the layers' temporaries, reused across steps.
  xt::xtensor<float, 2> x, normed, qkv, attn, mlp_pre, act, head_in, head_out;
  xt::xtensor<float, 1> mean, rstd;
  std::vector<DecodeAttentionRow> attention_rows;
  InputNorm input_norm;
  AlibiTable alibi;
  AdapterActivations adapter_acts;  // adapters()' temporaries
  xt::xtensor<float, 2> adapter_out;
};

void BatchDecoderImpl::check(const std::vector<DecodeItem>& items) const {
  const ModelConfig& c = model.config;
  check_model(c, model);
  std::set<const KVCache*> caches;
  for (size_t i = 0; i < items.size(); ++i) {
    check_item(c, items[i], item_name(i));
    if (!caches.insert(items[i].cache).second)
      throw Error(item_name(i) + ": its cache is another item's too (one item per sequence)");
  }
}

void BatchDecoderImpl::embed(const std::vector<DecodeItem>& items) {
  const int D = model.config.dim;
  row_item.clear();
  positions.clear();
  for (size_t i = 0; i < items.size(); ++i)
    for (size_t t = 0; t < items[i].tokens.size(); ++t) {
      row_item.push_back((int)i);
      positions.push_back(items[i].cache->length + (int)t);
    }
  const size_t R = row_item.size();
  x.resize({R, size_t(D)});
  for (size_t r = 0, i = 0, t = 0; r < R; ++r, ++t) {
    if (t == items[i].tokens.size()) ++i, t = 0;
    const DecodeItem& item = items[i];
    const int32_t tok = item.tokens[t];
    const float* vrow = is_virtual(tok) ? &(*item.virtual_rows)(virtual_index(tok), 0) : nullptr;
    embed_row(model, tok, vrow, positions[r], &x(r, 0));
  }
  input_norm.forward(model, x);
}

// x <- x + attn(norm1(x)); x <- x + mlp(norm2(x)), keys and values appended to the caches.
void BatchDecoderImpl::layer(int l, const std::vector<DecodeItem>& items, const RopeTable* rope,
                             const DistanceBias* bias) {
  const ModelConfig& c = model.config;
  const LayerWeights& w = model.layers[l];
  const int R = (int)row_item.size(), D = c.dim, F = c.ffn_dim, hd = c.head_dim;
  const int qd = c.q_dim(), kvd = c.kv_dim(), qkvd = c.qkv_dim();
  float* mean_or_null = c.layer_norm() ? mean.data() : nullptr;

  norm_forward(w.attn_norm, c.norm_eps, R, D, x.data(), normed.data(), mean_or_null, rstd.data());
  flops += decode_linear(w.qkv, R, normed.data(), D, qkv.data(), qkvd, false);
  if (rope) {
    rope_apply(*rope, R, positions.data(), c.n_heads, qkv.data(), qkvd, false);
    rope_apply(*rope, R, positions.data(), c.n_kv_heads, qkv.data() + qd, qkvd, false);
  }
  // Keys and values into the caches first: then each row attends to its cache's
  // positions 0..its own, the same whether earlier rows came in this step or before.
  attention_rows.resize(R);
  for (int r = 0; r < R; ++r) {
    KVCache& cache = *items[row_item[r]].cache;
    const int p = positions[r];
    for (int g = 0; g < c.n_kv_heads; ++g) {
      std::copy_n(&qkv(r, qd + g * hd), hd, &cache.keys[l](g, p, 0));
      std::copy_n(&qkv(r, qd + kvd + g * hd), hd, &cache.values[l](g, p, 0));
    }
    DecodeAttentionRow& a = attention_rows[r];
    a.q = &qkv(r, 0);
    a.keys = cache.keys[l].data();
    a.values = cache.values[l].data();
    a.head_stride = (size_t)cache.capacity * hd;
    a.n = p + 1;
    a.out = &attn(r, 0);
  }
  AttentionShape shape{c.n_heads, c.n_kv_heads, hd, c.attn_scale, bias};
  flops += decode_attention(shape, attention_rows);
  flops += decode_linear(w.attn_out, R, attn.data(), qd, x.data(), D, true);
  adapters(l, items);

  norm_forward(w.mlp_norm, c.norm_eps, R, D, x.data(), normed.data(), mean_or_null, rstd.data());
  const int pre_width = w.mlp_in.out;
  flops += decode_linear(w.mlp_in, R, normed.data(), D, mlp_pre.data(), pre_width, false);
  if (c.gated_mlp)
    gated_forward(c.activation, R, F, mlp_pre.data(), act.data());
  else
    activation_forward(c.activation, (long)R * F, mlp_pre.data(), act.data());
  flops += decode_linear(w.mlp_out, R, act.data(), F, x.data(), D, true);
}

// LLaMA-Adapter: each row of an item whose cache has layer l adapted adds its gated
// adapter attention (adapter_attention.h) to x, one row at a time (a row's result must
// not depend on the others of the step).
void BatchDecoderImpl::adapters(int l, const std::vector<DecodeItem>& items) {
  const ModelConfig& c = model.config;
  const size_t qkvd = c.qkv_dim();
  for (size_t r = 0; r < row_item.size(); ++r) {
    const KVCache& cache = *items[row_item[r]].cache;
    if (cache.adapter_kv.empty() || cache.adapter_kv[l].size() == 0) continue;
    AdapterBranch branch;
    branch.len = (int)cache.adapter_kv[l].shape(0);
    branch.gate = cache.adapter_gates[l];
    adapter_forward(c, model.layers[l], branch, cache.adapter_kv[l].data(), 1, &qkv(r, 0), qkvd,
                    adapter_acts, adapter_out, &x(r, 0));
  }
}

// The final norm and the output head, over the rows whose logits are wanted.
void BatchDecoderImpl::head(const std::vector<DecodeItem>& items,
                            std::vector<xt::xtensor<float, 2>>& logits) {
  const ModelConfig& c = model.config;
  const int D = c.dim, V = c.vocab_size;
  std::vector<int> wanted;  // rows of x
  for (size_t r = 0; r < row_item.size(); ++r) {
    const DecodeItem& item = items[row_item[r]];
    const bool last = r + 1 == row_item.size() || row_item[r + 1] != row_item[r];
    if (item.all_logits || last) wanted.push_back((int)r);
  }
  const size_t H = wanted.size();
  head_in.resize({H, size_t(D)});
  mean.resize({H});
  rstd.resize({H});
  for (size_t h = 0; h < H; ++h) std::copy_n(&x(wanted[h], 0), D, &head_in(h, 0));
  norm_forward(model.final_norm, c.norm_eps, (int)H, D, head_in.data(), head_in.data(),
               c.layer_norm() ? mean.data() : nullptr, rstd.data());
  head_out.resize({H, size_t(V)});
  flops += decode_linear(model.head, (int)H, head_in.data(), D, head_out.data(), V, false);

  logits.resize(items.size());
  for (size_t i = 0, h = 0; i < items.size(); ++i) {
    const size_t n = items[i].all_logits ? items[i].tokens.size() : 1;
    logits[i].resize({n, size_t(V)});
    std::copy_n(&head_out(h, 0), n * V, logits[i].data());
    h += n;
  }
}

void BatchDecoderImpl::forward(const std::vector<DecodeItem>& items,
                               std::vector<xt::xtensor<float, 2>>& logits) {
  const ModelConfig& c = model.config;
  flops = 0.0;
  if (items.empty()) {
    logits.clear();
    return;
  }
  embed(items);
  const size_t R = row_item.size();
  normed.resize({R, size_t(c.dim)});
  qkv.resize({R, size_t(c.qkv_dim())});
  attn.resize({R, size_t(c.q_dim())});
  mlp_pre.resize({R, size_t(model.layers[0].mlp_in.out)});
  act.resize({R, size_t(c.ffn_dim)});
  mean.resize({R});
  rstd.resize({R});

  int widest = 0, capacity = 0;  // positions the attention and the rotary table need
  for (const DecodeItem& item : items) {
    widest = std::max(widest, item.cache->length + (int)item.tokens.size());
    capacity = std::max(capacity, item.cache->capacity);
  }
  const DistanceBias* bias = c.alibi_positions() ? alibi.ensure(c.n_heads, widest) : nullptr;
  const RopeTable* rope = c.rotary_positions() ? &rope_for(c, capacity) : nullptr;
  for (int l = 0; l < c.n_layers; ++l) layer(l, items, rope, bias);
  for (const DecodeItem& item : items) item.cache->length += (int)item.tokens.size();
  head(items, logits);
}

BatchDecoder::BatchDecoder(const Model& model) : impl_(std::make_unique<BatchDecoderImpl>(model)) {}
BatchDecoder::~BatchDecoder() = default;

void BatchDecoder::step(const std::vector<DecodeItem>& items,
                        std::vector<xt::xtensor<float, 2>>& logits) {
  impl_->check(items);
  impl_->forward(items, logits);
}

double BatchDecoder::last_step_flops() const {
  return impl_->flops;
}

}  // namespace ph
