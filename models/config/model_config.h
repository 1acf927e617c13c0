// The geometry and hyper-parameters of a frozen model, whatever file it came from.
#pragma once

#include <string>
#include <vector>

namespace ph {

// The family a model comes from (for naming it; the engine reads the recipe below).
enum class Arch { kLlama, kGpt2, kT5, kBert, kRoberta, kBloom, kGemma };

const char* arch_name(Arch arch);

// What the model is used for, named as PEFT names it (adapter_config.json's task_type).
enum class TaskType { kCausalLm, kSeq2SeqLm, kSeqCls };

const char* task_type_name(TaskType task);  // "CAUSAL_LM", "SEQ_2_SEQ_LM", "SEQ_CLS"
// The task type PEFT calls `name`; throws ph::Error listing the known names otherwise.
TaskType parse_task_type(const std::string& name);

// --- The layer recipe: plain choices each family makes, read by the engine -------------
enum class NormKind { kRms, kLayer };  // RMSNorm (T5's and Gemma's too) or LayerNorm
enum class Activation { kGeluTanh, kGeluErf, kRelu, kSilu };
enum class Positions {
  kRotary,    // llama: rotary embedding of q and k
  kLearned,   // gpt2, bert: a learned table added to the input
  kAlibi,     // bloom: a per-head linear bias on the key's distance
  kRelative,  // t5: learned per-head biases of bucketed distances
};
enum class Stacks { kDecoder, kEncoder, kEncoderDecoder };
// How a classification model turns hidden states into class scores.
enum class ClassifierHead {
  kNone,
  kLastToken,    // decoders: `score` at each sequence's last real token
  kPooler,       // bert: tanh(pooler(h[0])) -> classifier
  kDenseTanh,    // roberta: classifier.dense -> tanh -> classifier.out_proj on h[0]
};

// Where LLaMA-Adapter's gated branch (PEFT's ADAPTION_PROMPT) joins an attention, as PEFT
// wraps each family: through the attention's output projection (llama), after it (gpt2),
// or not at all (PEFT supports no other family).
enum class AdapterJoin { kNone, kThroughOutput, kAfterOutput };

struct ModelConfig {
  Arch arch = Arch::kLlama;
  std::string model_type;  // config.json's model_type ("" for llama2.c files)
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

  // The layer recipe, decided by the family (models/families/) and nowhere else: the
  // engine's layers and passes read these, never `arch`.
  NormKind norm = NormKind::kRms;
  Activation activation = Activation::kSilu;
  bool gated_mlp = true;  // mlp_in is fused [gate | up]: f(gate) * up
  Positions positions = Positions::kRotary;
  bool post_norm = false;     // bert: norm after each residual add instead of before
  float attn_scale = 0.0f;    // 0: 1/sqrt(head_dim); t5: 1 (no scale)
  float embed_scale = 1.0f;   // gemma: sqrt(dim), applied to virtual tokens too
  AdapterJoin adapter_join = AdapterJoin::kThroughOutput;  // llama's; set_family says others'
  Stacks stacks = Stacks::kDecoder;
  TaskType task = TaskType::kCausalLm;  // from config.json's `architectures`
  ClassifierHead classifier = ClassifierHead::kNone;
  std::vector<std::string> labels;  // SEQ_CLS: class names, id order (id2label)
  int pad_id = -1;
  int decoder_start_id = -1;  // encoder-decoders: the decoder's first input token
  int n_decoder_layers = 0;   // encoder-decoders: the decoder stack (n_layers: the encoder)
  // bloom, bert: a norm (Model::embed_norm) on every input row, virtual tokens included,
  // after embed_scale (and the position and token-type embeddings) and before the first
  // layer.
  bool embed_norm = false;
  // Encoders (bert, roberta): rows of the token-type table (0: no token types), and the
  // first row of the position table (roberta: padding_idx + 1; the table then holds
  // position_offset + max_positions rows).
  int type_vocab_size = 0;
  int position_offset = 0;
  // t5 (Positions::kRelative): distances map to this many learned buckets per head, exact
  // up to half of them and logarithmic up to max_distance (transformers'
  // _relative_position_bucket; bidirectional in the encoder, causal in the decoder).
  int relative_buckets = 0;
  int relative_max_distance = 0;

  int num_labels() const { return (int)labels.size(); }

  int q_dim() const { return n_heads * head_dim; }
  int kv_dim() const { return n_kv_heads * head_dim; }
  int qkv_dim() const { return q_dim() + 2 * kv_dim(); }

  bool rotary_positions() const { return positions == Positions::kRotary; }
  bool alibi_positions() const { return positions == Positions::kAlibi; }
  bool layer_norm() const { return norm == NormKind::kLayer; }
};

// Sets `arch` and the recipe fields to that family's usual choices (llama's are the
// defaults above; gpt2: LayerNorm, tanh-GELU, plain MLP, learned positions; bloom: LayerNorm,
// tanh-GELU, plain MLP, ALiBi, the embedding norm; gemma: GeGLU (tanh) — its embed_scale,
// sqrt(dim), is set by the caller once dim is known; bert and roberta: post-norm SEQ_CLS
// encoders with erf-GELU, biases, token types and the embedding norm). For configs
// built in code (random models, benchmarks, tests); families parsing config.json call it
// first and then set what their config says.
void set_family(ModelConfig& config, Arch arch);

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

// Parses a Hugging Face config.json with the family its model_type names (models/families/).
// Throws ph::Error naming the file and the field for anything missing or inconsistent.
ModelConfig parse_hf_config(const std::string& config_json_path);

}  // namespace ph
