#include "models/engine/seq2seq_decode.h"

#include <algorithm>
#include <string>

#include "models/common/error.h"
#include "models/engine/embedding.h"
#include "models/engine/kernels.h"
#include "models/engine/linear.h"

namespace ph {

namespace {

// Input rows of `tokens` (ids or virtual slots of `virtual_tokens`).
xt::xtensor<float, 2> embed_tokens(const Model& model, const std::vector<int32_t>& tokens,
                                   const xt::xtensor<float, 2>& virtual_tokens, const char* what) {
  const ModelConfig& c = model.config;
  xt::xtensor<float, 2> x = xt::empty<float>({tokens.size(), (size_t)c.dim});
  for (size_t t = 0; t < tokens.size(); ++t) {
    const int32_t tok = tokens[t];
    const float* vrow = nullptr;
    if (is_virtual(tok)) {
      if (virtual_tokens.size() == 0 || virtual_index(tok) >= (int)virtual_tokens.shape(0))
        throw Error(std::string(what) + ": virtual slot " + std::to_string(virtual_index(tok)) +
                    " has no virtual token");
      vrow = &virtual_tokens(virtual_index(tok), 0);
    } else if (tok >= c.vocab_size) {
      throw Error(std::string(what) + ": token id " + std::to_string(tok) +
                  " is outside the vocabulary of " + std::to_string(c.vocab_size));
    }
    embed_row(model, tok, vrow, 0, &x(t, 0));
  }
  return x;
}

KVSpan span_of(const float* k, const float* v, int n, size_t pos_stride, size_t head_stride) {
  KVSpan s;
  s.k = k;
  s.v = v;
  s.n = n;
  s.pos_stride = pos_stride;
  s.head_stride = head_stride;
  return s;
}

// [kv_heads, n, head_dim] of prefix block p, keys (kv = 0) or values (1).
xt::xtensor<float, 3> prefix_part(const xt::xtensor<float, 5>& prefix, int p, int kv) {
  xt::xtensor<float, 3> out = xt::empty<float>({prefix.shape(2), prefix.shape(3), prefix.shape(4)});
  std::copy_n(&prefix(p, kv, 0, 0, 0), out.size(), out.data());
  return out;
}

}  // namespace

Seq2SeqCache encode(const Model& model, const std::vector<int32_t>& encoder_tokens,
                    const xt::xtensor<float, 2>& virtual_tokens,
                    const xt::xtensor<float, 5>& prefix, int decoder_capacity,
                    bool prefix_all_attention) {
  const ModelConfig& c = model.config;
  const int L = c.n_layers, Ld = c.n_decoder_layers, hd = c.head_dim, kvd = c.kv_dim();
  const int n = prefix.size() ? (int)prefix.shape(3) : 0;
  const int blocks = prefix_all_attention ? L + 2 * Ld : L;
  if (n > 0 && (prefix.shape(0) != (size_t)blocks || prefix.shape(1) != 2 ||
                prefix.shape(2) != (size_t)c.n_kv_heads || prefix.shape(4) != (size_t)hd))
    throw Error("encode: the key/value prefix does not fit the model (it needs [" +
                std::to_string(blocks) + ", 2, " + std::to_string(c.n_kv_heads) + ", n, " +
                std::to_string(hd) + "])");
  if (encoder_tokens.empty()) throw Error("encode: the encoder input is empty");
  const int enc_n = prefix_all_attention ? n : 0;
  const int T = (int)encoder_tokens.size();
  if (enc_n + T > c.max_positions || decoder_capacity <= n || decoder_capacity > c.max_positions)
    throw Error("encode: an input of " + std::to_string(T) + " tokens or a decoder of " +
                std::to_string(decoder_capacity) + " positions (with a prefix of " +
                std::to_string(n) + ") does not fit the model's context of " +
                std::to_string(c.max_positions));

  // encoder
  StackLayout layout;
  layout.rows = T;
  layout.segments.push_back({0, T, enc_n});
  RelativeBias enc_bias;
  enc_bias.build(c, model.encoder_relative_bias, true, enc_n + T);
  layout.bias = &enc_bias.bias;
  xt::xtensor<float, 2> x = embed_tokens(model, encoder_tokens, virtual_tokens, "encode"), y;
  T5Activations acts;
  T5Scratch scratch;
  for (int l = 0; l < L; ++l) {
    BlockContext ctx;
    if (enc_n) ctx.self.push_back(span_of(&prefix(l, 0, 0, 0, 0), &prefix(l, 1, 0, 0, 0), n, hd,
                                          (size_t)n * hd));
    T5Block(c, model.layers[l], nullptr).forward(layout, ctx, x, acts, y, scratch);
    std::swap(x, y);
  }
  xt::xtensor<float, 2> out = xt::empty<float>({(size_t)T, (size_t)c.dim});
  xt::xtensor<float, 1> rstd = xt::empty<float>({(size_t)T});
  norm_forward(model.final_norm, c.norm_eps, T, c.dim, x.data(), out.data(), nullptr, rstd.data());

  Seq2SeqCache cache;
  cache.encoder_len = T;
  for (int l = 0; l < Ld; ++l) {
    cache.cross_kv.push_back(xt::empty<float>({(size_t)T, (size_t)2 * kvd}));
    linear_forward(model.cross_attention[l].kv, T, out.data(), c.dim, cache.cross_kv[l].data(),
                   2 * kvd);
    if (prefix_all_attention && n) {
      cache.cross_prefix_k.push_back(prefix_part(prefix, L + 2 * l + 1, 0));
      cache.cross_prefix_v.push_back(prefix_part(prefix, L + 2 * l + 1, 1));
    }
  }

  // decoder self-attention cache, the prefix first (as seq2seq_pass.cpp maps it)
  KVCache& self = cache.self;
  self.capacity = decoder_capacity;
  for (int l = 0; l < Ld; ++l) {
    self.keys.push_back(xt::zeros<float>({(size_t)c.n_kv_heads, (size_t)decoder_capacity, (size_t)hd}));
    self.values.push_back(xt::zeros<float>(self.keys.back().shape()));
    if (n == 0) continue;
    const int p = prefix_all_attention ? L + 2 * l : 2 * l % L;
    for (int g = 0; g < c.n_kv_heads; ++g)
      for (int j = 0; j < n; ++j) {
        std::copy_n(&prefix(p, 0, g, j, 0), hd, &self.keys[l](g, j, 0));
        std::copy_n(&prefix(p, 1, g, j, 0), hd, &self.values[l](g, j, 0));
      }
  }
  self.length = n;
  cache.bias.build(c, model.decoder_relative_bias, false, decoder_capacity);
  return cache;
}

xt::xtensor<float, 1> extend_decoder(const Model& model, Seq2SeqCache& cache,
                                     const std::vector<int32_t>& tokens,
                                     const xt::xtensor<float, 2>& virtual_tokens) {
  const ModelConfig& c = model.config;
  const int T = (int)tokens.size(), hd = c.head_dim, qd = c.q_dim(), kvd = c.kv_dim();
  KVCache& self = cache.self;
  if (T == 0) throw Error("extend_decoder: no tokens");
  if (self.length + T > self.capacity)
    throw Error("extend_decoder: " + std::to_string(self.length + T) +
                " positions exceed the decoder cache's capacity of " +
                std::to_string(self.capacity));
  StackLayout layout;
  layout.rows = T;
  layout.causal = true;
  layout.segments.push_back({0, T, self.length});
  layout.bias = &cache.bias.bias;
  xt::xtensor<float, 2> x = embed_tokens(model, tokens, virtual_tokens, "extend_decoder"), y;
  T5Activations acts;
  T5Scratch scratch;
  for (int l = 0; l < c.n_decoder_layers; ++l) {
    BlockContext ctx;
    if (self.length > 0)
      ctx.self.push_back(span_of(self.keys[l].data(), self.values[l].data(), self.length, hd,
                                 (size_t)self.capacity * hd));
    std::vector<KVSpan> cross;
    if (!cache.cross_prefix_k.empty()) {
      const int n = (int)cache.cross_prefix_k[l].shape(1);
      cross.push_back(span_of(cache.cross_prefix_k[l].data(), cache.cross_prefix_v[l].data(), n,
                              hd, (size_t)n * hd));
    }
    cross.push_back(span_of(cache.cross_kv[l].data(), cache.cross_kv[l].data() + kvd,
                            cache.encoder_len, 2 * kvd, hd));
    ctx.cross.push_back(std::move(cross));
    T5Block(c, model.decoder_layers[l], &model.cross_attention[l])
        .forward(layout, ctx, x, acts, y, scratch);
    std::swap(x, y);
    for (int t = 0; t < T; ++t)
      for (int g = 0; g < c.n_kv_heads; ++g) {
        std::copy_n(&acts.qkv(t, qd + g * hd), hd, &self.keys[l](g, self.length + t, 0));
        std::copy_n(&acts.qkv(t, qd + kvd + g * hd), hd, &self.values[l](g, self.length + t, 0));
      }
  }
  self.length += T;
  xt::xtensor<float, 1> normed = xt::empty<float>({(size_t)c.dim});
  float rstd;
  norm_forward(model.decoder_final_norm, c.norm_eps, 1, c.dim, &x(T - 1, 0), normed.data(),
               nullptr, &rstd);
  xt::xtensor<float, 1> logits = xt::empty<float>({(size_t)c.vocab_size});
  linear_forward(model.head, 1, normed.data(), c.dim, logits.data(), c.vocab_size);
  return logits;
}

}  // namespace ph
