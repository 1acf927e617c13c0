#include "models/config/model_config.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "models/common/error.h"
#include "models/common/json_file.h"
#include "models/config/config_reader.h"
#include "models/families/family.h"

namespace ph {

const char* arch_name(Arch arch) {
  switch (arch) {
    case Arch::kLlama:
      return "llama";
    case Arch::kGpt2:
      return "gpt2";
    case Arch::kT5:
      return "t5";
    case Arch::kBert:
      return "bert";
    case Arch::kRoberta:
      return "roberta";
    case Arch::kBloom:
      return "bloom";
    case Arch::kGemma:
      return "gemma";
  }
  return "unknown";
}

void set_family(ModelConfig& c, Arch arch) {
  c.arch = arch;
  c.adapter_join = arch == Arch::kLlama  ? AdapterJoin::kThroughOutput
                   : arch == Arch::kGpt2 ? AdapterJoin::kAfterOutput
                                         : AdapterJoin::kNone;
  if (arch == Arch::kGpt2) {
    c.norm = NormKind::kLayer;
    c.activation = Activation::kGeluTanh;
    c.gated_mlp = false;
    c.positions = Positions::kLearned;
  }
  if (arch == Arch::kBert || arch == Arch::kRoberta) {  // post-norm encoders, SEQ_CLS only
    c.stacks = Stacks::kEncoder;
    c.task = TaskType::kSeqCls;
    c.norm = NormKind::kLayer;
    c.post_norm = true;
    c.activation = Activation::kGeluErf;
    c.gated_mlp = false;
    c.positions = Positions::kLearned;
    c.qkv_bias = true;
    c.embed_norm = true;  // over word + position + token type
    c.classifier = arch == Arch::kBert ? ClassifierHead::kPooler : ClassifierHead::kDenseTanh;
    c.type_vocab_size = arch == Arch::kBert ? 2 : 1;
    c.pad_id = arch == Arch::kBert ? 0 : 1;
    c.position_offset = arch == Arch::kBert ? 0 : c.pad_id + 1;  // fairseq's padding_idx + 1
  }
  if (arch == Arch::kBloom) {
    c.norm = NormKind::kLayer;
    c.activation = Activation::kGeluTanh;
    c.gated_mlp = false;
    c.positions = Positions::kAlibi;
    c.embed_norm = true;
  }
  if (arch == Arch::kGemma) c.activation = Activation::kGeluTanh;
  if (arch == Arch::kT5) {  // T5 v1.0 (relu); v1.1 and flan-t5 are gated-gelu
    c.norm = NormKind::kRms;
    c.activation = Activation::kRelu;
    c.gated_mlp = false;
    c.positions = Positions::kRelative;
    c.attn_scale = 1.0f;
    c.stacks = Stacks::kEncoderDecoder;
    c.task = TaskType::kSeq2SeqLm;
    c.relative_buckets = 32;
    c.relative_max_distance = 128;
  }
}

namespace {
constexpr std::pair<TaskType, const char*> kTaskNames[] = {
    {TaskType::kCausalLm, "CAUSAL_LM"},
    {TaskType::kSeq2SeqLm, "SEQ_2_SEQ_LM"},
    {TaskType::kSeqCls, "SEQ_CLS"},
};
}  // namespace

const char* task_type_name(TaskType task) {
  for (const auto& [t, name] : kTaskNames)
    if (t == task) return name;
  return "unknown";
}

TaskType parse_task_type(const std::string& name) {
  std::string known;
  for (const auto& [t, n] : kTaskNames) {
    if (name == n) return t;
    known += (known.empty() ? "" : ", ") + std::string(n);
  }
  throw Error("unknown task type '" + name + "'; known: " + known);
}

void validate_config(const ModelConfig& c, const std::string& source) {
  // Every size positive and within its limit before any product of sizes is formed: the
  // values come from an untrusted file.
  auto bounded = [&](int64_t value, const char* field, int64_t limit) {
    if (value <= 0) {
      throw Error(source + ": " + field + " must be positive, found " + std::to_string(value));
    }
    if (value > limit) {
      throw Error(source + ": " + field + " (" + std::to_string(value) + ") exceeds " +
                  std::to_string(limit) + ", the largest PromptHost accepts");
    }
  };
  bounded(c.n_layers, "n_layers", kMaxLayers);
  bounded(c.dim, "dim", kMaxWidth);
  bounded(c.n_heads, "n_heads", kMaxWidth);
  bounded(c.n_kv_heads, "n_kv_heads", kMaxWidth);
  bounded(c.head_dim, "head_dim", kMaxWidth);
  bounded(c.ffn_dim, "ffn_dim", kMaxWidth);
  bounded(c.vocab_size, "vocab_size", kMaxVocab);
  bounded(c.max_positions, "max_positions", kMaxPositions);
  // Both factors are at most 2^20, so the int64 products cannot overflow; bounding them
  // keeps the fused q|k|v width (q + 2 kv) well inside the kernels' int.
  bounded(int64_t{c.n_heads} * c.head_dim, "n_heads * head_dim", kMaxWidth);
  bounded(int64_t{c.n_kv_heads} * c.head_dim, "n_kv_heads * head_dim", kMaxWidth);
  if (c.n_heads % c.n_kv_heads != 0) {
    throw Error(source + ": n_heads (" + std::to_string(c.n_heads) +
                ") is not divisible by n_kv_heads (" + std::to_string(c.n_kv_heads) + ")");
  }
  if (!(c.norm_eps > 0.0f) || !std::isfinite(c.norm_eps)) {
    throw Error(source + ": norm_eps must be a positive number, found " +
                std::to_string(c.norm_eps));
  }
  if (c.positions == Positions::kRotary) {
    if (c.head_dim % 2 != 0) {  // rotary embeddings rotate pairs of dimensions
      throw Error(source + ": head_dim (" + std::to_string(c.head_dim) +
                  ") must be even for rotary embeddings");
    }
    if (!(c.rope_theta > 0.0f) || !std::isfinite(c.rope_theta)) {
      throw Error(source + ": rope_theta must be a positive number, found " +
                  std::to_string(c.rope_theta));
    }
  }
  if (c.arch == Arch::kGpt2) {
    // GPT-2 splits c_attn's output into three [dim] blocks of n_heads heads each.
    if (c.n_kv_heads != c.n_heads || c.q_dim() != c.dim) {
      throw Error(source + ": gpt2 needs n_kv_heads == n_heads and n_heads * head_dim == dim");
    }
  }
  if (c.type_vocab_size < 0 || c.type_vocab_size > kMaxVocab)
    throw Error(source + ": type_vocab_size (" + std::to_string(c.type_vocab_size) +
                ") must be in [0, " + std::to_string(kMaxVocab) + "]");
  if (c.position_offset < 0 || c.position_offset > kMaxPositions - c.max_positions)
    throw Error(source + ": position_offset (" + std::to_string(c.position_offset) +
                ") must be in [0, " + std::to_string(kMaxPositions - c.max_positions) + "]");
  if (c.positions == Positions::kRelative) {
    // The bucket formula needs an exact range of at least one distance per direction and
    // a logarithmic range that is not empty (else it divides by log(1) = 0).
    bounded(c.relative_buckets, "relative_buckets", 1 << 16);
    if (c.relative_buckets < 4 || c.relative_max_distance <= c.relative_buckets / 2)
      throw Error(source + ": relative position buckets (" + std::to_string(c.relative_buckets) +
                  ", max distance " + std::to_string(c.relative_max_distance) +
                  ") need at least 4 buckets and a max distance above half of them");
  }
  if (c.stacks == Stacks::kEncoderDecoder) bounded(c.n_decoder_layers, "n_decoder_layers", kMaxLayers);
  for (auto [id, field] : {std::pair{c.bos_id, "bos_id"}, std::pair{c.eos_id, "eos_id"}}) {
    if (id < -1 || id >= c.vocab_size) {
      throw Error(source + ": " + field + " (" + std::to_string(id) +
                  ") is outside the vocabulary of " + std::to_string(c.vocab_size));
    }
  }
}

namespace {

// The task type from config.json's `architectures` (transformers' class name), and for a
// classification model its classes (id2label, which must agree with num_labels).
void read_task(const ConfigReader& r, ModelConfig& c) {
  const std::string cls = r.first_architecture();
  auto ends_with = [&](const char* suffix) {
    const std::string s(suffix);
    return cls.size() >= s.size() && cls.compare(cls.size() - s.size(), s.size(), s) == 0;
  };
  if (ends_with("ForSequenceClassification")) {
    c.task = TaskType::kSeqCls;
  } else if (ends_with("ForConditionalGeneration") && c.stacks == Stacks::kEncoderDecoder) {
    c.task = TaskType::kSeq2SeqLm;
  } else if (c.stacks == Stacks::kEncoderDecoder) {
    c.task = TaskType::kSeq2SeqLm;
  } else if (c.stacks == Stacks::kEncoder) {
    c.task = TaskType::kSeqCls;  // e.g. BertForMaskedLM: classified as transformers'
                                 // AutoModelForSequenceClassification would (a new head)
  } else {
    c.task = TaskType::kCausalLm;
  }
  c.pad_id = r.token_id("pad_token_id");
  if (c.task == TaskType::kSeqCls) c.labels = r.class_labels();
}

}  // namespace

ModelConfig parse_hf_config(const std::string& config_json_path) {
  const std::string& path = config_json_path;
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot open " + path);
  std::stringstream text;
  text << in.rdbuf();
  const nlohmann::json root = parse_json(text.str(), path);
  if (!root.is_object()) throw Error(path + ": must hold a JSON object");

  const ConfigReader r(path, root);
  if (!r.has("model_type")) throw Error(path + ": missing field 'model_type'");
  const std::string model_type = r.optional_string("model_type", "");
  ModelConfig c = family_of(model_type, path).parse_config(r, model_type);
  c.model_type = model_type;
  c.bos_id = r.token_id("bos_token_id");
  c.eos_id = r.token_id("eos_token_id");
  read_task(r, c);
  validate_config(c, path);
  return c;
}

}  // namespace ph
