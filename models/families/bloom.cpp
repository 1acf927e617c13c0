// BLOOM: ALiBi instead of position embeddings, a LayerNorm on the word embeddings, LayerNorm
// before each block, a fused query_key_value projection laid out per head, tanh-GELU MLP,
// biases everywhere, the head tied to the word embeddings.
#include <algorithm>
#include <string>

#include "models/common/error.h"
#include "models/families/family.h"

namespace ph {

namespace {

// BLOOM was trained on sequences of 2048 tokens; ALiBi itself sets no limit, so a
// config.json's seq_length (when given) is the context.
constexpr int kBloomContext = 2048;

ModelConfig parse_bloom(const ConfigReader& r, const std::string&) {
  ModelConfig c;
  set_family(c, Arch::kBloom);
  c.n_layers = r.required_size("n_layer", kMaxLayers);
  // transformers accepts n_embed as the older name of hidden_size
  c.dim = r.has("hidden_size") || !r.has("n_embed") ? r.required_size("hidden_size", kMaxWidth)
                                                    : r.required_size("n_embed", kMaxWidth);
  c.n_heads = r.required_size("n_head", kMaxWidth);
  c.n_kv_heads = c.n_heads;
  c.vocab_size = r.required_size("vocab_size", kMaxVocab);
  c.max_positions = r.optional_size("seq_length", kBloomContext, kMaxPositions);
  c.ffn_dim = 4 * c.dim;  // dim <= 2^20: fits
  c.norm_eps = r.optional_float("layer_norm_epsilon", 1e-5f);
  c.tied_head = r.optional_bool("tie_word_embeddings", true);
  if (c.dim % c.n_heads != 0)
    throw Error(r.path() + ": field 'hidden_size' (" + std::to_string(c.dim) +
                ") is not divisible by 'n_head' (" + std::to_string(c.n_heads) + ")");
  c.head_dim = c.dim / c.n_heads;
  c.classifier = ClassifierHead::kLastToken;  // BloomForSequenceClassification's `score`
  // A different network, refused rather than computed wrong.
  if (r.optional_bool("apply_residual_connection_post_layernorm", false))
    throw Error(r.path() +
                ": field 'apply_residual_connection_post_layernorm' is true; only the pre-norm "
                "residual (false) is supported");
  return c;
}

// query_key_value's output rows are [heads, 3, head_dim] (q, k, v of head 0, then of head
// 1, ...); the kernels want [q of every head | k | v]. Rows of `width` values each.
const float* qkv_per_head_to_blocks(Model& m, const float* src, int heads, int head_dim,
                                    int width) {
  float* dst = m.allocate((size_t)3 * heads * head_dim * width);
  const size_t row = width, block = (size_t)heads * head_dim * width;
  for (int h = 0; h < heads; ++h)
    for (int part = 0; part < 3; ++part)
      for (int i = 0; i < head_dim; ++i) {
        const float* from = src + ((size_t)(h * 3 + part) * head_dim + i) * row;
        float* to = dst + part * block + ((size_t)h * head_dim + i) * row;
        std::copy_n(from, row, to);
      }
  return dst;
}

void load_bloom(TensorReader& w, Model& m, const std::string& dir) {
  const ModelConfig& c = m.config;
  const int64_t D = c.dim, V = c.vocab_size, F = c.ffn_dim;
  // BloomModel checkpoints (not ...ForCausalLM) lack the "transformer." prefix.
  const std::string pre =
      !w.has("transformer.word_embeddings.weight") && w.has("word_embeddings.weight")
          ? ""
          : "transformer.";
  auto norm = [&](const std::string& name) {
    return Norm{w.keep(name + ".weight", {D}), w.keep(name + ".bias", {D})};
  };
  auto linear = [&](const std::string& name, int64_t in, int64_t out) {
    return Linear{w.keep(name + ".weight", {out, in}), w.keep(name + ".bias", {out}), (int)in,
                  (int)out, false};
  };

  m.token_embedding = w.keep(pre + "word_embeddings.weight", {V, D});
  m.embed_norm = norm(pre + "word_embeddings_layernorm");
  for (int l = 0; l < c.n_layers; ++l) {
    const std::string p = layer_prefix(pre + "h.", l);
    LayerWeights& L = m.layers[l];
    L.attn_norm = norm(p + "input_layernorm");
    const std::string qkv = p + "self_attention.query_key_value";
    L.qkv = {qkv_per_head_to_blocks(m, w.keep(qkv + ".weight", {3 * D, D}), c.n_heads, c.head_dim,
                                    c.dim),
             qkv_per_head_to_blocks(m, w.keep(qkv + ".bias", {3 * D}), c.n_heads, c.head_dim, 1),
             c.dim, 3 * c.dim, false};
    L.attn_out = linear(p + "self_attention.dense", D, D);
    L.mlp_norm = norm(p + "post_attention_layernorm");
    L.mlp_in = linear(p + "mlp.dense_h_to_4h", D, F);
    L.mlp_out = linear(p + "mlp.dense_4h_to_h", F, D);
  }
  m.final_norm = norm(pre + "ln_f");
  load_output_head(w, m, dir, "lm_head.weight");
}

}  // namespace

const Family kBloomFamily = {"bloom", {"bloom"}, parse_bloom, load_bloom};

}  // namespace ph
