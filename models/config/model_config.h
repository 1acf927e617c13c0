// The geometry and hyper-parameters of a frozen model, whatever file it came from.
#pragma once

#include <string>

namespace ph {

enum class Arch { kLlama, kGpt2 };

const char* arch_name(Arch arch);

struct ModelConfig {
  Arch arch = Arch::kLlama;
  int n_layers = 0;
  int dim = 0;         // hidden size (model width)
  int n_heads = 0;     // query heads
  int n_kv_heads = 0;  // key/value heads (== n_heads without grouped-query attention)
  int head_dim = 0;    // per head; n_heads * head_dim may differ from dim (config "head_dim")
  int ffn_dim = 0;     // llama intermediate_size, gpt2 n_inner (4 * dim by default)
  int vocab_size = 0;
  int max_positions = 0;  // context length (gpt2: size of the learned position table)
  float norm_eps = 1e-5f;
  float rope_theta = 10000.0f;  // llama only
  bool tied_head = false;       // output head shares the token embedding
  bool qkv_bias = false;        // llama family with q/k/v biases (qwen2 style)
  int bos_id = -1;              // -1 when the config does not say
  int eos_id = -1;
  // The model was trained on texts each preceded by BOS, so a generated BOS starts a new
  // text: generation stops there (llama2.c checkpoints; llama2.c's run.c does the same).
  bool bos_ends_text = false;

  int q_dim() const { return n_heads * head_dim; }
  int kv_dim() const { return n_kv_heads * head_dim; }
  int qkv_dim() const { return q_dim() + 2 * kv_dim(); }

  // The layer recipe as plain choices, decided here from the family and nowhere else: the
  // engine's layers and passes read these, never `arch`.
  bool rotary_positions() const { return arch == Arch::kLlama; }  // else a learned table
  bool gated_mlp() const { return arch == Arch::kLlama; }  // SwiGLU over [gate|up], else GELU
  bool layer_norm() const { return arch == Arch::kGpt2; }  // LayerNorm, else RMSNorm
};

// The largest sizes a model file may claim. Every open model is well inside them (the
// largest have ~130 layers, widths of ~50k and vocabularies of ~260k); a file claiming
// more is refused before anything is allocated, and within them every size product the
// kernels compute in int (the fused q|k|v and gate|up widths) fits.
constexpr int kMaxLayers = 1024;
constexpr int kMaxWidth = 1 << 20;  // dim, ffn_dim, head_dim, n_heads * head_dim, ...
constexpr int kMaxVocab = 1 << 24;
constexpr int kMaxPositions = 1 << 24;  // context length

// Checks the invariants every kernel relies on (positive sizes within the limits above,
// heads divisible by key/value heads, ...). `source` names the file in the error message.
void validate_config(const ModelConfig& config, const std::string& source);

// Parses a Hugging Face config.json (model_type "llama", "mistral", "qwen2", "gpt2", ...).
// Throws ph::Error naming the file and the field for anything missing or inconsistent.
ModelConfig parse_hf_config(const std::string& config_json_path);

}  // namespace ph
