#include "models/loader/hf_folder.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include <nlohmann/json.hpp>

#include "models/common/error.h"
#include "models/common/json_file.h"
#include "models/loader/safetensors.h"

namespace ph {

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr const char* kSingleFile = "model.safetensors";
constexpr const char* kIndexFile = "model.safetensors.index.json";

// Where the tensors of a folder live: one safetensors file, or the shards named by an index
// (each shard mapped once, however many tensors it holds).
class WeightFiles {
 public:
  WeightFiles(const std::string& dir, const std::string& weights_file) {
    const fs::path folder(dir);
    if (!weights_file.empty()) {
      open_single(weights_file);
    } else if (fs::exists(folder / kSingleFile)) {
      open_single((folder / kSingleFile).string());
    } else if (fs::exists(folder / kIndexFile)) {
      open_index(folder, (folder / kIndexFile).string());
    } else {
      throw Error(dir + ": no " + kSingleFile + " or " + kIndexFile + " in the folder");
    }
  }

  bool has(const std::string& name) const {
    if (!indexed_) return files_.front()->find(name) != nullptr;
    return weight_map_.count(name) != 0;
  }

  // The file holding `name`; throws ph::Error naming the tensor when it is absent.
  const SafetensorsFile& file_of(const std::string& name) const {
    if (!indexed_) {
      const SafetensorsFile& file = *files_.front();
      if (!file.find(name)) throw Error(file.path() + ": tensor '" + name + "' is missing");
      return file;
    }
    const auto it = weight_map_.find(name);
    if (it == weight_map_.end()) {
      throw Error(source_ + ": tensor '" + name + "' is missing from the weight_map");
    }
    if (!it->second->find(name)) {
      throw Error(it->second->path() + ": tensor '" + name + "' is missing (" + source_ +
                  " places it in this shard)");
    }
    return *it->second;
  }

  const std::vector<std::unique_ptr<SafetensorsFile>>& files() const { return files_; }

 private:
  void open_single(const std::string& path) {
    files_.push_back(std::make_unique<SafetensorsFile>(path));
    source_ = path;
  }

  void open_index(const fs::path& folder, const std::string& index_path) {
    indexed_ = true;
    source_ = index_path;
    std::ifstream in(index_path, std::ios::binary);
    if (!in) throw Error("cannot open " + index_path);
    std::stringstream text;
    text << in.rdbuf();
    json index = parse_json(text.str(), index_path);
    if (!index.is_object() || !index.contains("weight_map") || !index["weight_map"].is_object()) {
      throw Error(index_path + ": missing the 'weight_map' object");
    }
    std::map<std::string, const SafetensorsFile*> shards;
    for (const auto& [tensor, shard] : index["weight_map"].items()) {
      if (!shard.is_string()) {
        throw Error(index_path + ": weight_map entry for tensor '" + tensor +
                    "' must be a file name");
      }
      const std::string shard_name = shard.get<std::string>();
      auto found = shards.find(shard_name);
      if (found == shards.end()) {
        found =
            shards.emplace(shard_name, open_shard(folder, index_path, shard_name, tensor)).first;
      }
      weight_map_[tensor] = found->second;
    }
  }

  const SafetensorsFile* open_shard(const fs::path& folder, const std::string& index_path,
                                    const std::string& shard, const std::string& tensor) {
    // The index is data: it must not point outside the model folder.
    const fs::path relative(shard);
    const bool escapes = relative.is_absolute() || shard.empty() ||
                         std::any_of(relative.begin(), relative.end(),
                                     [](const fs::path& part) { return part == ".."; });
    if (escapes) {
      throw Error(index_path + ": shard '" + shard + "' (for tensor '" + tensor +
                  "') is not a file name inside the model folder");
    }
    const fs::path path = folder / relative;
    if (!fs::exists(path)) {
      throw Error(index_path + ": shard '" + shard + "' (for tensor '" + tensor +
                  "') is missing: " + path.string());
    }
    files_.push_back(std::make_unique<SafetensorsFile>(path.string()));
    return files_.back().get();
  }

  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, const SafetensorsFile*> weight_map_;  // indexed only
  bool indexed_ = false;
  std::string source_;  // the file that says where tensors are, for messages
};

// Reads checked float tensors into a Model: views into the mapping when they can be,
// converted copies otherwise, and fused copies for the kernels' q|k|v and gate|up layouts.
class TensorReader {
 public:
  TensorReader(const WeightFiles& files, Model& model) : files_(files), model_(model) {}

  bool has(const std::string& name) const { return files_.has(name); }

  // `name` as float32 with exactly `shape`; its memory lives as long as the model.
  const float* keep(const std::string& name, const std::vector<int64_t>& shape) {
    FloatTensor t = read(name, shape);
    retain(t.storage);
    return t.data;
  }

  // The tensors `parts`, each checked to have its shape, one after the other in one owned
  // buffer (the kernels' fused q|k|v and gate|up layouts). Every part is checked before
  // the buffer is allocated, so its size is one the file holds, not one config.json claims.
  const float* fuse(const std::vector<std::pair<std::string, std::vector<int64_t>>>& parts) {
    std::vector<FloatTensor> checked;
    size_t total = 0;
    for (const auto& [name, shape] : parts) {
      checked.push_back(read(name, shape));
      total += checked.back().numel;
    }
    float* fused = model_.allocate(total);
    float* dst = fused;
    for (const FloatTensor& t : checked) {
      if (t.numel) std::memcpy(dst, t.data, t.numel * sizeof(float));
      dst += t.numel;
    }
    return fused;
  }

 private:
  FloatTensor read(const std::string& name, const std::vector<int64_t>& shape) {
    const SafetensorsFile& file = files_.file_of(name);
    const TensorInfo& info = file.info(name);
    if (info.dtype != DType::kF32 && info.dtype != DType::kF16 && info.dtype != DType::kBF16) {
      throw Error(file.path() + ": tensor '" + name + "' has dtype " + dtype_name(info.dtype) +
                  "; weights must be F32, F16 or BF16");
    }
    if (info.shape != shape) {
      throw Error(file.path() + ": tensor '" + name + "' has shape " + shape_string(info.shape) +
                  ", expected " + shape_string(shape) + " from config.json");
    }
    return file.to_float(info);
  }

  // Adds `storage` to the model once (many tensors share one mapping).
  void retain(const std::shared_ptr<WeightStorage>& storage) {
    auto& kept = model_.storage;
    if (std::find(kept.begin(), kept.end(), storage) == kept.end()) kept.push_back(storage);
  }

  const WeightFiles& files_;
  Model& model_;
};

std::string layer_prefix(const std::string& base, int layer) {
  return base + std::to_string(layer) + ".";
}

void load_llama(TensorReader& w, Model& m, const std::string& dir) {
  const ModelConfig& c = m.config;
  const int64_t D = c.dim, V = c.vocab_size, F = c.ffn_dim;
  const int64_t Q = c.q_dim(), KV = c.kv_dim();

  m.token_embedding = w.keep("model.embed_tokens.weight", {V, D});
  for (int l = 0; l < c.n_layers; ++l) {
    const std::string p = layer_prefix("model.layers.", l);
    LayerWeights& L = m.layers[l];
    L.attn_norm = {w.keep(p + "input_layernorm.weight", {D}), nullptr};

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

    L.mlp_norm = {w.keep(p + "post_attention_layernorm.weight", {D}), nullptr};
    // One GEMM for gate and up: rows gate, then up.
    L.mlp_in = {w.fuse({{p + "mlp.gate_proj.weight", {F, D}}, {p + "mlp.up_proj.weight", {F, D}}}),
                nullptr, c.dim, 2 * c.ffn_dim, false};
    L.mlp_out = {w.keep(p + "mlp.down_proj.weight", {D, F}), nullptr, c.ffn_dim, c.dim, false};
  }
  m.final_norm = {w.keep("model.norm.weight", {D}), nullptr};

  if (c.tied_head) {
    m.head = {m.token_embedding, nullptr, c.dim, c.vocab_size, false};
  } else if (!w.has("lm_head.weight")) {
    throw Error(dir +
                ": tensor 'lm_head.weight' is missing and config.json does not tie the "
                "output head to the embedding (tie_word_embeddings is false)");
  } else {
    m.head = {w.keep("lm_head.weight", {V, D}), nullptr, c.dim, c.vocab_size, false};
  }
}

void load_gpt2(TensorReader& w, Model& m) {
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
  if (c.tied_head) {
    m.head = {m.token_embedding, nullptr, c.dim, c.vocab_size, false};
  } else {
    m.head = {w.keep("lm_head.weight", {V, D}), nullptr, c.dim, c.vocab_size, false};
  }
}

}  // namespace

Model load_hf_folder(const std::string& dir, const std::string& weights_file) {
  if (!fs::is_directory(dir)) throw Error(dir + ": not a model folder");
  Model model;
  model.config = parse_hf_config((fs::path(dir) / "config.json").string());
  model.layers.resize(model.config.n_layers);

  const WeightFiles files(dir, weights_file);
  TensorReader reader(files, model);
  if (model.config.arch == Arch::kLlama) {
    load_llama(reader, model, dir);
  } else {
    load_gpt2(reader, model);
  }
  return model;
}

}  // namespace ph
