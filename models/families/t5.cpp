// T5 (T5ForConditionalGeneration: t5, t5 v1.1, flan-t5): an encoder and a decoder stack,
// RMS-style layer norm before each sub-layer, no biases, no 1/sqrt(d) attention scale,
// learned relative position buckets (in each stack's first block, shared by its layers),
// a cross-attention in every decoder block, a relu or gated feed-forward, and a head tied
// to the embedding (the decoder output scaled by d_model^-0.5 first) or an lm_head.
#include <cmath>
#include <string>

#include "models/common/error.h"
#include "models/families/family.h"

namespace ph {

namespace {

// transformers' ACT2FN names a T5 feed-forward may use.
Activation activation_named(const ConfigReader& r, const std::string& name,
                            const std::string& proj) {
  if (name == "relu") return Activation::kRelu;
  if (name == "gelu") return Activation::kGeluErf;
  if (name == "gelu_new" || name == "gelu_pytorch_tanh") return Activation::kGeluTanh;
  if (name == "silu" || name == "swish") return Activation::kSilu;
  throw Error(r.path() + ": field 'feed_forward_proj' is '" + proj + "'; supported: relu, gelu, " +
              "gelu_new, silu, each optionally gated ('gated-gelu', ...)");
}

// feed_forward_proj is "act" or "gated-act"; "gated-gelu" means gelu_new (T5Config).
void read_feed_forward(const ConfigReader& r, ModelConfig& c) {
  const std::string proj = r.optional_string("feed_forward_proj", "relu");
  const size_t dash = proj.find('-');
  std::string act = proj;
  c.gated_mlp = false;
  if (dash != std::string::npos) {
    if (proj.compare(0, dash, "gated") != 0)
      throw Error(r.path() + ": field 'feed_forward_proj' is '" + proj +
                  "'; expected 'ACT' or 'gated-ACT'");
    act = proj.substr(dash + 1);
    c.gated_mlp = true;
  }
  if (proj == "gated-gelu") act = "gelu_new";
  c.activation = activation_named(r, act, proj);
}

ModelConfig parse_t5(const ConfigReader& r, const std::string&) {
  ModelConfig c;
  set_family(c, Arch::kT5);  // the recipe: RMS norm, relative positions, no scale, two stacks
  c.dim = r.required_size("d_model", kMaxWidth);
  c.head_dim = r.required_size("d_kv", kMaxWidth);
  c.ffn_dim = r.required_size("d_ff", kMaxWidth);
  c.n_layers = r.required_size("num_layers", kMaxLayers);
  c.n_decoder_layers = r.optional_size("num_decoder_layers", c.n_layers, kMaxLayers);
  c.n_heads = r.required_size("num_heads", kMaxWidth);
  c.n_kv_heads = c.n_heads;
  c.vocab_size = r.required_size("vocab_size", kMaxVocab);
  // Relative positions set no limit; T5 was trained on 512-token inputs.
  c.max_positions = r.optional_size("n_positions", 512, kMaxPositions);
  // transformers has defaults (32, 128), but a config without the bucket count is not one
  // transformers wrote for a T5: refused rather than guessed (issue 13).
  c.relative_buckets = r.required_size("relative_attention_num_buckets", 1 << 16);
  c.relative_max_distance = r.optional_size("relative_attention_max_distance", 128, kMaxPositions);
  c.norm_eps = r.optional_float("layer_norm_epsilon", 1e-6f);
  c.tied_head = r.optional_bool("tie_word_embeddings", true);
  c.decoder_start_id = r.token_id("decoder_start_token_id");
  if (c.decoder_start_id < 0) c.decoder_start_id = r.token_id("pad_token_id");
  if (c.decoder_start_id < 0 || c.decoder_start_id >= c.vocab_size)
    throw Error(r.path() + ": field 'decoder_start_token_id' (" +
                std::to_string(c.decoder_start_id) + ") is missing or outside the vocabulary of " +
                std::to_string(c.vocab_size));
  read_feed_forward(r, c);
  return c;
}

void load_t5(TensorReader& w, Model& m, const std::string& dir) {
  const ModelConfig& c = m.config;
  const int64_t D = c.dim, V = c.vocab_size, F = c.ffn_dim, Q = c.q_dim();
  const int64_t buckets = c.relative_buckets, H = c.n_heads;
  auto norm = [&](const std::string& name) { return Norm{w.keep(name, {D}), nullptr}; };
  auto linear = [&](const std::string& name, int in, int out) {
    return Linear{w.keep(name, {out, in}), nullptr, in, out, false};
  };
  auto qkv = [&](const std::string& p) {
    return Linear{w.fuse({{p + "q.weight", {Q, D}}, {p + "k.weight", {Q, D}}, {p + "v.weight", {Q, D}}}),
                  nullptr, c.dim, c.qkv_dim(), false};
  };
  // relu: wi; gated: wi_0 (the activated gate) and wi_1, fused [gate | up]
  auto mlp_in = [&](const std::string& p) {
    if (!c.gated_mlp) return linear(p + "wi.weight", c.dim, c.ffn_dim);
    return Linear{w.fuse({{p + "wi_0.weight", {F, D}}, {p + "wi_1.weight", {F, D}}}), nullptr,
                  c.dim, 2 * c.ffn_dim, false};
  };
  auto self_attention = [&](const std::string& p, LayerWeights& L) {
    L.attn_norm = norm(p + "layer.0.layer_norm.weight");
    L.qkv = qkv(p + "layer.0.SelfAttention.");
    L.attn_out = linear(p + "layer.0.SelfAttention.o.weight", c.q_dim(), c.dim);
  };
  auto mlp = [&](const std::string& p, LayerWeights& L) {
    L.mlp_norm = norm(p + "layer_norm.weight");
    L.mlp_in = mlp_in(p + "DenseReluDense.");
    L.mlp_out = linear(p + "DenseReluDense.wo.weight", c.ffn_dim, c.dim);
  };

  m.token_embedding = w.keep("shared.weight", {V, D});
  for (int l = 0; l < c.n_layers; ++l) {
    const std::string p = layer_prefix("encoder.block.", l);
    self_attention(p, m.layers[l]);
    mlp(p + "layer.1.", m.layers[l]);
  }
  m.final_norm = norm("encoder.final_layer_norm.weight");
  m.decoder_layers.resize(c.n_decoder_layers);
  m.cross_attention.resize(c.n_decoder_layers);
  for (int l = 0; l < c.n_decoder_layers; ++l) {
    const std::string p = layer_prefix("decoder.block.", l);
    self_attention(p, m.decoder_layers[l]);
    const std::string x = p + "layer.1.EncDecAttention.";
    CrossAttentionWeights& X = m.cross_attention[l];
    X.norm = norm(p + "layer.1.layer_norm.weight");
    X.q = linear(x + "q.weight", c.dim, c.q_dim());
    X.kv = {w.fuse({{x + "k.weight", {Q, D}}, {x + "v.weight", {Q, D}}}), nullptr, c.dim,
            2 * c.kv_dim(), false};
    X.out = linear(x + "o.weight", c.q_dim(), c.dim);
    mlp(p + "layer.2.", m.decoder_layers[l]);
  }
  const std::string bias = "layer.0.SelfAttention.relative_attention_bias.weight";
  m.encoder_relative_bias = w.keep("encoder.block.0." + bias, {buckets, H});
  m.decoder_relative_bias = w.keep("decoder.block.0." + bias, {buckets, H});

  if (c.tied_head) {
    // T5 scales the decoder's output by d_model^-0.5 before a tied head; folded into the
    // final norm's gain (an owned copy), which every user of the head then applies.
    float* gain = w.copy("decoder.final_layer_norm.weight", {D});
    const float scale = 1.0f / std::sqrt((float)c.dim);
    for (int64_t i = 0; i < D; ++i) gain[i] *= scale;
    m.decoder_final_norm = {gain, nullptr};
    m.head = {m.token_embedding, nullptr, c.dim, c.vocab_size, false};
  } else if (!w.has("lm_head.weight")) {
    throw Error(dir +
                ": tensor 'lm_head.weight' is missing and config.json does not tie the "
                "output head to the embedding (tie_word_embeddings is false)");
  } else {
    m.decoder_final_norm = norm("decoder.final_layer_norm.weight");
    m.head = {w.keep("lm_head.weight", {V, D}), nullptr, c.dim, c.vocab_size, false};
  }
}

}  // namespace

const Family kT5Family = {"t5", {"t5"}, parse_t5, load_t5};

}  // namespace ph
