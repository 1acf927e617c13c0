// Gemma: llama's layout and rotary attention, with its embeddings scaled by sqrt(hidden),
// RMSNorm gains stored as w of (1 + w), a GeGLU MLP, an explicit head_dim (heads · head_dim
// need not equal hidden) and the head tied to the embeddings.
#include <cmath>
#include <string>

#include "models/common/error.h"
#include "models/families/family.h"

namespace ph {

namespace {

// transformers' GemmaMLP: hidden_activation (hidden_act is ignored), gelu_pytorch_tanh
// when it is not set.
Activation gemma_activation(const ConfigReader& r) {
  const std::string act = r.optional_string("hidden_activation", "gelu_pytorch_tanh");
  if (act == "gelu_pytorch_tanh" || act == "gelu_new") return Activation::kGeluTanh;
  if (act == "gelu") return Activation::kGeluErf;
  throw Error(r.path() + ": field 'hidden_activation' is '" + act +
              "'; supported: gelu_pytorch_tanh, gelu_new, gelu");
}

ModelConfig parse_gemma(const ConfigReader& r, const std::string&) {
  ModelConfig c;
  set_family(c, Arch::kGemma);
  read_llama_sizes(r, c);
  // GemmaConfig's defaults for what config.json may omit
  c.max_positions = r.optional_size("max_position_embeddings", 8192, kMaxPositions);
  c.head_dim = r.optional_size("head_dim", 256, kMaxWidth);
  check_kv_heads(r, c);
  c.norm_eps = r.optional_float("rms_norm_eps", 1e-6f);
  c.rope_theta = r.optional_float("rope_theta", 10000.0f);
  c.tied_head = r.optional_bool("tie_word_embeddings", true);
  c.qkv_bias = r.optional_bool("attention_bias", false);
  c.activation = gemma_activation(r);
  // transformers multiplies by sqrt(hidden) in the activations' dtype (float32 here)
  c.embed_scale = (float)std::sqrt((double)c.dim);
  c.classifier = ClassifierHead::kLastToken;  // GemmaForSequenceClassification's `score`
  if (r.has("rope_scaling"))
    throw Error(r.path() +
                ": field 'rope_scaling' is set; scaled rotary embeddings are not "
                "supported");
  return c;
}

// Gemma's RMSNorm multiplies by (1 + w): stored so, the kernels get the gain 1 + w.
const float* unit_offset_gain(TensorReader& w, const std::string& name, int64_t dim) {
  float* gain = w.copy(name, {dim});
  for (int64_t i = 0; i < dim; ++i) gain[i] += 1.0f;
  return gain;
}

void load_gemma(TensorReader& w, Model& m, const std::string& dir) {
  load_llama_layout(w, m, dir, unit_offset_gain);
}

}  // namespace

const Family kGemmaFamily = {"gemma", {"gemma"}, parse_gemma, load_gemma};

}  // namespace ph
