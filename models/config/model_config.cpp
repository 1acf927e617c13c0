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

namespace ph {

const char* arch_name(Arch arch) {
  switch (arch) {
    case Arch::kLlama:
      return "llama";
    case Arch::kGpt2:
      return "gpt2";
  }
  return "unknown";
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
  if (c.arch == Arch::kLlama) {
    if (c.head_dim % 2 != 0) {  // rotary embeddings rotate pairs of dimensions
      throw Error(source + ": head_dim (" + std::to_string(c.head_dim) +
                  ") must be even for rotary embeddings");
    }
    if (!(c.rope_theta > 0.0f) || !std::isfinite(c.rope_theta)) {
      throw Error(source + ": rope_theta must be a positive number, found " +
                  std::to_string(c.rope_theta));
    }
  } else {
    // GPT-2 splits c_attn's output into three [dim] blocks of n_heads heads each.
    if (c.n_kv_heads != c.n_heads || c.q_dim() != c.dim) {
      throw Error(source + ": gpt2 needs n_kv_heads == n_heads and n_heads * head_dim == dim");
    }
  }
  for (auto [id, field] : {std::pair{c.bos_id, "bos_id"}, std::pair{c.eos_id, "eos_id"}}) {
    if (id < -1 || id >= c.vocab_size) {
      throw Error(source + ": " + field + " (" + std::to_string(id) +
                  ") is outside the vocabulary of " + std::to_string(c.vocab_size));
    }
  }
}

namespace {

using nlohmann::json;

// Reads the fields of one config.json, each error naming the file and the field.
class ConfigReader {
 public:
  ConfigReader(std::string path, const json& root) : path_(std::move(path)), root_(root) {}

  bool has(const char* field) const {
    const auto it = root_.find(field);
    return it != root_.end() && !it->is_null();
  }

  int required_int(const char* field) const {
    if (!has(field)) throw Error(path_ + ": missing field '" + field + "'");
    return to_int(field, root_.at(field));
  }
  int optional_int(const char* field, int fallback) const {
    return has(field) ? to_int(field, root_.at(field)) : fallback;
  }
  // A size: an integer in [1, limit].
  int required_size(const char* field, int limit) const {
    return bounded(field, required_int(field), limit);
  }
  int optional_size(const char* field, int fallback, int limit) const {
    return bounded(field, optional_int(field, fallback), limit);
  }

  float optional_float(const char* field, float fallback) const {
    if (!has(field)) return fallback;
    const json& value = root_.at(field);
    if (!value.is_number()) throw wrong_type(field, "a number", value);
    const double d = value.get<double>();
    if (!(d > 0.0) || !std::isfinite(static_cast<float>(d))) {
      throw Error(path_ + ": field '" + field + "' must be a positive number, found " +
                  value.dump());
    }
    return static_cast<float>(d);
  }

  bool optional_bool(const char* field, bool fallback) const {
    if (!has(field)) return fallback;
    const json& value = root_.at(field);
    if (!value.is_boolean()) throw wrong_type(field, "true or false", value);
    return value.get<bool>();
  }

  std::string optional_string(const char* field, const std::string& fallback) const {
    if (!has(field)) return fallback;
    const json& value = root_.at(field);
    if (!value.is_string()) throw wrong_type(field, "a string", value);
    return value.get<std::string>();
  }

  // A token id: absent or null gives -1; a list (several end tokens) gives its first.
  int token_id(const char* field) const {
    if (!has(field)) return -1;
    const json& value = root_.at(field);
    if (value.is_array()) {
      if (value.empty()) return -1;
      return to_int(field, value.front());
    }
    return to_int(field, value);
  }

  const std::string& path() const { return path_; }

 private:
  int to_int(const char* field, const json& value) const {
    if (!value.is_number_integer()) throw wrong_type(field, "an integer", value);
    const long long v =
        value.is_number_unsigned()
            ? static_cast<long long>(std::min<uint64_t>(value.get<uint64_t>(), uint64_t{LLONG_MAX}))
            : value.get<long long>();
    if (v < INT_MIN || v > INT_MAX) {
      throw Error(path_ + ": field '" + field + "' is out of range: " + value.dump());
    }
    return static_cast<int>(v);
  }

  int bounded(const char* field, int value, int limit) const {
    if (value <= 0) {
      throw Error(path_ + ": field '" + field + "' must be positive, found " +
                  std::to_string(value));
    }
    if (value > limit) {
      throw Error(path_ + ": field '" + field + "' is " + std::to_string(value) +
                  "; PromptHost accepts at most " + std::to_string(limit));
    }
    return value;
  }

  Error wrong_type(const char* field, const char* expected, const json& value) const {
    return Error(path_ + ": field '" + field + "' must be " + expected + ", found " +
                 value.type_name() + " " + value.dump());
  }

  std::string path_;
  const json& root_;
};

// head_dim when the config gives it, else hidden / heads (which must then divide).
int head_dim_of(const ConfigReader& r, int hidden, const char* hidden_field, int heads,
                const char* heads_field) {
  if (r.has("head_dim")) return r.required_size("head_dim", kMaxWidth);
  if (hidden % heads != 0) {
    throw Error(r.path() + ": field '" + hidden_field + "' (" + std::to_string(hidden) +
                ") is not divisible by '" + heads_field + "' (" + std::to_string(heads) + ")");
  }
  return hidden / heads;
}

ModelConfig parse_llama_family(const ConfigReader& r, const std::string& model_type) {
  ModelConfig c;
  c.arch = Arch::kLlama;
  c.dim = r.required_size("hidden_size", kMaxWidth);
  c.ffn_dim = r.required_size("intermediate_size", kMaxWidth);
  c.n_heads = r.required_size("num_attention_heads", kMaxWidth);
  c.n_kv_heads = r.optional_size("num_key_value_heads", c.n_heads, kMaxWidth);
  c.n_layers = r.required_size("num_hidden_layers", kMaxLayers);
  c.vocab_size = r.required_size("vocab_size", kMaxVocab);
  c.max_positions = r.required_size("max_position_embeddings", kMaxPositions);
  c.norm_eps = r.optional_float("rms_norm_eps", 1e-6f);  // transformers' default
  c.rope_theta = r.optional_float("rope_theta", 10000.0f);
  c.tied_head = r.optional_bool("tie_word_embeddings", false);
  c.head_dim = head_dim_of(r, c.dim, "hidden_size", c.n_heads, "num_attention_heads");
  if (c.n_heads % c.n_kv_heads != 0) {
    throw Error(r.path() + ": field 'num_attention_heads' (" + std::to_string(c.n_heads) +
                ") is not divisible by 'num_key_value_heads' (" + std::to_string(c.n_kv_heads) +
                ")");
  }
  c.qkv_bias = model_type == "qwen2" || r.optional_bool("attention_bias", false);

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

ModelConfig parse_gpt2(const ConfigReader& r) {
  ModelConfig c;
  c.arch = Arch::kGpt2;
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
  const std::string act = r.optional_string("activation_function", "gelu_new");
  if (act != "gelu_new") {
    throw Error(r.path() + ": field 'activation_function' is '" + act +
                "'; only 'gelu_new' is supported");
  }
  return c;
}

}  // namespace

ModelConfig parse_hf_config(const std::string& config_json_path) {
  const std::string& path = config_json_path;
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot open " + path);
  std::stringstream text;
  text << in.rdbuf();
  const json root = parse_json(text.str(), path);
  if (!root.is_object()) throw Error(path + ": must hold a JSON object");

  const ConfigReader r(path, root);
  if (!r.has("model_type")) throw Error(path + ": missing field 'model_type'");
  const std::string model_type = r.optional_string("model_type", "");
  ModelConfig c;
  if (model_type == "llama" || model_type == "mistral" || model_type == "qwen2") {
    c = parse_llama_family(r, model_type);
  } else if (model_type == "gpt2") {
    c = parse_gpt2(r);
  } else {
    throw Error(path + ": field 'model_type' is '" + model_type +
                "'; supported: llama, mistral, qwen2, gpt2");
  }
  c.bos_id = r.token_id("bos_token_id");
  c.eos_id = r.token_id("eos_token_id");
  validate_config(c, path);
  return c;
}

}  // namespace ph
