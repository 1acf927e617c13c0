// Llama and the decoders built like it (mistral, qwen2): RMSNorm before each block,
// rotary positions, SwiGLU, optional q/k/v biases (qwen2), grouped-query attention.
#include <string>

#include "models/common/error.h"
#include "models/families/family.h"

namespace ph {

void read_llama_sizes(const ConfigReader& r, ModelConfig& c) {
  c.dim = r.required_size("hidden_size", kMaxWidth);
  c.ffn_dim = r.required_size("intermediate_size", kMaxWidth);
  c.n_heads = r.required_size("num_attention_heads", kMaxWidth);
  c.n_kv_heads = r.optional_size("num_key_value_heads", c.n_heads, kMaxWidth);
  c.n_layers = r.required_size("num_hidden_layers", kMaxLayers);
  c.vocab_size = r.required_size("vocab_size", kMaxVocab);
}

void check_kv_heads(const ConfigReader& r, const ModelConfig& c) {
  if (c.n_heads % c.n_kv_heads != 0) {
    throw Error(r.path() + ": field 'num_attention_heads' (" + std::to_string(c.n_heads) +
                ") is not divisible by 'num_key_value_heads' (" + std::to_string(c.n_kv_heads) +
                ")");
  }
}

namespace {

ModelConfig parse_llama_family(const ConfigReader& r, const std::string& model_type) {
  ModelConfig c;
  set_family(c, Arch::kLlama);
  read_llama_sizes(r, c);
  c.max_positions = r.required_size("max_position_embeddings", kMaxPositions);
  c.norm_eps = r.optional_float("rms_norm_eps", 1e-6f);  // transformers' default
  c.rope_theta = r.optional_float("rope_theta", 10000.0f);
  c.tied_head = r.optional_bool("tie_word_embeddings", false);
  c.head_dim = head_dim_of(r, c.dim, "hidden_size", c.n_heads, "num_attention_heads");
  check_kv_heads(r, c);
  c.qkv_bias = model_type == "qwen2" || r.optional_bool("attention_bias", false);
  c.classifier = ClassifierHead::kLastToken;  // ...ForSequenceClassification's `score`

  // What the kernels do not implement is refused rather than silently computed wrong.
  const std::string act = r.optional_string("hidden_act", "silu");
  if (act != "silu") {
    throw Error(r.path() + ": field 'hidden_act' is '" + act + "'; only 'silu' is supported");
  }
  if (r.has("rope_scaling")) {
    throw Error(r.path() +
                ": field 'rope_scaling' is set; scaled rotary embeddings are not "
                "supported");
  }
  if (r.optional_bool("mlp_bias", false)) {
    throw Error(r.path() + ": field 'mlp_bias' is true; MLP biases are not supported");
  }
  // Sliding-window attention equals full attention up to the window: cap the context there.
  const bool sliding = model_type == "mistral" || r.optional_bool("use_sliding_window", false);
  if (sliding && r.has("sliding_window")) {
    c.max_positions = std::min(c.max_positions, r.required_size("sliding_window", kMaxPositions));
  }
  return c;
}

const float* plain_gain(TensorReader& w, const std::string& name, int64_t dim) {
  return w.keep(name, {dim});
}

void load_llama(TensorReader& w, Model& m, const std::string& dir) {
  load_llama_layout(w, m, dir, plain_gain);
}

}  // namespace

void load_llama_layout(TensorReader& w, Model& m, const std::string& dir,
                       const float* (*norm_gain)(TensorReader&, const std::string&, int64_t)) {
  const ModelConfig& c = m.config;
  const int64_t D = c.dim, V = c.vocab_size, F = c.ffn_dim;
  const int64_t Q = c.q_dim(), KV = c.kv_dim();

  m.token_embedding = w.keep("model.embed_tokens.weight", {V, D});
  for (int l = 0; l < c.n_layers; ++l) {
    const std::string p = layer_prefix("model.layers.", l);
    LayerWeights& L = m.layers[l];
    L.attn_norm = {norm_gain(w, p + "input_layernorm.weight", D), nullptr};

    // One GEMM for q, k and v: rows q, then k, then v.
    const std::string attn = p + "self_attn.";
    L.qkv = {w.fuse({{attn + "q_proj.weight", {Q, D}},
                     {attn + "k_proj.weight", {KV, D}},
                     {attn + "v_proj.weight", {KV, D}}}),
             nullptr, c.dim, c.qkv_dim(), false};
    if (c.qkv_bias) {
      L.qkv.b = w.fuse({{attn + "q_proj.bias", {Q}},
                        {attn + "k_proj.bias", {KV}},
                        {attn + "v_proj.bias", {KV}}});
    } else if (w.has(attn + "q_proj.bias")) {
      // Ignoring it would compute a different network without a word.
      throw Error(dir + ": tensor '" + attn +
                  "q_proj.bias' is present but config.json "
                  "does not enable attention biases (attention_bias)");
    }
    L.attn_out = {w.keep(p + "self_attn.o_proj.weight", {D, Q}), nullptr, c.q_dim(), c.dim, false};
    // attention_bias also gives o_proj a bias in transformers (qwen2's o_proj has none)
    if (w.has(attn + "o_proj.bias")) L.attn_out.b = w.keep(attn + "o_proj.bias", {D});

    L.mlp_norm = {norm_gain(w, p + "post_attention_layernorm.weight", D), nullptr};
    // One GEMM for gate and up: rows gate, then up.
    L.mlp_in = {w.fuse({{p + "mlp.gate_proj.weight", {F, D}}, {p + "mlp.up_proj.weight", {F, D}}}),
                nullptr, c.dim, 2 * c.ffn_dim, false};
    L.mlp_out = {w.keep(p + "mlp.down_proj.weight", {D, F}), nullptr, c.ffn_dim, c.dim, false};
  }
  m.final_norm = {norm_gain(w, "model.norm.weight", D), nullptr};
  load_output_head(w, m, dir, "lm_head.weight");
}

const Family kLlamaFamily = {
    "llama", {"llama", "mistral", "qwen2"}, parse_llama_family, load_llama};

}  // namespace ph
