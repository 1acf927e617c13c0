// GPT-2: LayerNorm before each block, a learned position table, tanh-GELU MLP, biases
// everywhere, Conv1D weights ([in, out]) used as stored.
#include <string>

#include "models/common/error.h"
#include "models/families/family.h"

namespace ph {

namespace {

ModelConfig parse_gpt2(const ConfigReader& r, const std::string&) {
  ModelConfig c;
  set_family(c, Arch::kGpt2);
  c.n_layers = r.required_size("n_layer", kMaxLayers);
  c.dim = r.required_size("n_embd", kMaxWidth);
  c.n_heads = r.required_size("n_head", kMaxWidth);
  c.n_kv_heads = c.n_heads;
  c.vocab_size = r.required_size("vocab_size", kMaxVocab);
  c.max_positions = r.required_size("n_positions", kMaxPositions);
  c.ffn_dim = r.optional_size("n_inner", 4 * c.dim, kMaxWidth);  // dim <= 2^20: 4 * dim fits
  c.norm_eps = r.optional_float("layer_norm_epsilon", 1e-5f);
  c.tied_head = r.optional_bool("tie_word_embeddings", true);
  if (c.dim % c.n_heads != 0) {
    throw Error(r.path() + ": field 'n_embd' (" + std::to_string(c.dim) +
                ") is not divisible by 'n_head' (" + std::to_string(c.n_heads) + ")");
  }
  c.head_dim = c.dim / c.n_heads;
  c.classifier = ClassifierHead::kLastToken;  // GPT2ForSequenceClassification's `score`
  const std::string act = r.optional_string("activation_function", "gelu_new");
  if (act != "gelu_new") {
    throw Error(r.path() + ": field 'activation_function' is '" + act +
                "'; only 'gelu_new' is supported");
  }
  return c;
}

void load_gpt2(TensorReader& w, Model& m, const std::string& dir) {
  const ModelConfig& c = m.config;
  const int64_t D = c.dim, V = c.vocab_size, P = c.max_positions;
  // Checkpoints saved from GPT2Model (not GPT2LMHeadModel) lack the "transformer." prefix.
  const std::string pre =
      !w.has("transformer.wte.weight") && w.has("wte.weight") ? "" : "transformer.";
  auto norm = [&](const std::string& name) {
    return Norm{w.keep(name + ".weight", {D}), w.keep(name + ".bias", {D})};
  };
  // Conv1D stores [in, out]: used as is, in-major.
  auto conv1d = [&](const std::string& name, int in, int out) {
    return Linear{w.keep(name + ".weight", {in, out}), w.keep(name + ".bias", {out}), in, out,
                  true};
  };

  m.token_embedding = w.keep(pre + "wte.weight", {V, D});
  m.position_embedding = w.keep(pre + "wpe.weight", {P, D});
  for (int l = 0; l < c.n_layers; ++l) {
    const std::string p = layer_prefix(pre + "h.", l);
    LayerWeights& L = m.layers[l];
    L.attn_norm = norm(p + "ln_1");
    L.qkv = conv1d(p + "attn.c_attn", c.dim, 3 * c.dim);
    L.attn_out = conv1d(p + "attn.c_proj", c.dim, c.dim);
    L.mlp_norm = norm(p + "ln_2");
    L.mlp_in = conv1d(p + "mlp.c_fc", c.dim, c.ffn_dim);
    L.mlp_out = conv1d(p + "mlp.c_proj", c.ffn_dim, c.dim);
  }
  m.final_norm = norm(pre + "ln_f");
  load_output_head(w, m, dir, "lm_head.weight");
}

}  // namespace

const Family kGpt2Family = {"gpt2", {"gpt2"}, parse_gpt2, load_gpt2};

}  // namespace ph
