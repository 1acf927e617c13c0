// Reading a model folder's tensors: which safetensors file (or shard) holds each one, and
// checked float32 views or owned copies of them for a Model. The families' weight loaders
// (models/families/) read through TensorReader.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "models/engine/model.h"
#include "models/loader/safetensors.h"

namespace ph {

// Where the tensors of a folder live: one safetensors file, or the shards named by an index
// (each shard mapped once, however many tensors it holds).
class WeightFiles {
 public:
  // weights_file: a given safetensors file, or empty to look in `dir`.
  WeightFiles(const std::string& dir, const std::string& weights_file);

  bool has(const std::string& name) const;
  // The file holding `name`; throws ph::Error naming the tensor when it is absent.
  const SafetensorsFile& file_of(const std::string& name) const;
  const std::vector<std::unique_ptr<SafetensorsFile>>& files() const { return files_; }

 private:
  void open_single(const std::string& path);
  void open_index(const std::string& folder, const std::string& index_path);
  const SafetensorsFile* open_shard(const std::string& folder, const std::string& index_path,
                                    const std::string& shard, const std::string& tensor);

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
  const float* keep(const std::string& name, const std::vector<int64_t>& shape);
  // The tensors `parts`, each checked to have its shape, one after the other in one owned
  // buffer (the kernels' fused q|k|v and gate|up layouts). Every part is checked before
  // the buffer is allocated, so its size is one the file holds, not one config.json claims.
  const float* fuse(const std::vector<std::pair<std::string, std::vector<int64_t>>>& parts);
  // `name` with `shape`, copied into an owned buffer the caller may rewrite (a family
  // that stores weights differently from the kernels' layout, e.g. gemma's 1 + w).
  float* copy(const std::string& name, const std::vector<int64_t>& shape);

  Model& model() { return model_; }

 private:
  FloatTensor read(const std::string& name, const std::vector<int64_t>& shape);
  // Adds `storage` to the model once (many tensors share one mapping).
  void retain(const std::shared_ptr<WeightStorage>& storage);

  const WeightFiles& files_;
  Model& model_;
};

// "model.layers." + 3 -> "model.layers.3."
inline std::string layer_prefix(const std::string& base, int layer) {
  return base + std::to_string(layer) + ".";
}

}  // namespace ph
