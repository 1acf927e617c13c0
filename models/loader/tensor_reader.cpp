#include "models/loader/tensor_reader.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "models/common/error.h"
#include "models/common/json_file.h"

namespace ph {

namespace {
namespace fs = std::filesystem;
using nlohmann::json;

constexpr const char* kSingleFile = "model.safetensors";
constexpr const char* kIndexFile = "model.safetensors.index.json";
}  // namespace

WeightFiles::WeightFiles(const std::string& dir, const std::string& weights_file) {
  const fs::path folder(dir);
  if (!weights_file.empty()) {
    open_single(weights_file);
  } else if (fs::exists(folder / kSingleFile)) {
    open_single((folder / kSingleFile).string());
  } else if (fs::exists(folder / kIndexFile)) {
    open_index(folder.string(), (folder / kIndexFile).string());
  } else {
    throw Error(dir + ": no " + kSingleFile + " or " + kIndexFile + " in the folder");
  }
}

bool WeightFiles::has(const std::string& name) const {
  if (!indexed_) return files_.front()->find(name) != nullptr;
  return weight_map_.count(name) != 0;
}

const SafetensorsFile& WeightFiles::file_of(const std::string& name) const {
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

void WeightFiles::open_single(const std::string& path) {
  files_.push_back(std::make_unique<SafetensorsFile>(path));
  source_ = path;
}

void WeightFiles::open_index(const std::string& folder, const std::string& index_path) {
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

const SafetensorsFile* WeightFiles::open_shard(const std::string& folder,
                                            const std::string& index_path,
                                            const std::string& shard,
                                            const std::string& tensor) {
  // The index is data: it must not point outside the model folder.
  const fs::path relative(shard);
  const bool escapes = relative.is_absolute() || shard.empty() ||
                       std::any_of(relative.begin(), relative.end(),
                                   [](const fs::path& part) { return part == ".."; });
  if (escapes) {
    throw Error(index_path + ": shard '" + shard + "' (for tensor '" + tensor +
                "') is not a file name inside the model folder");
  }
  const fs::path path = fs::path(folder) / relative;
  if (!fs::exists(path)) {
    throw Error(index_path + ": shard '" + shard + "' (for tensor '" + tensor +
                "') is missing: " + path.string());
  }
  files_.push_back(std::make_unique<SafetensorsFile>(path.string()));
  return files_.back().get();
}

// `name` as float32 with exactly `shape`; its memory lives as long as the model.
const float* TensorReader::keep(const std::string& name, const std::vector<int64_t>& shape) {
  FloatTensor t = read(name, shape);
  retain(t.storage);
  return t.data;
}

// The tensors `parts`, each checked to have its shape, one after the other in one owned
// buffer (the kernels' fused q|k|v and gate|up layouts). Every part is checked before
// the buffer is allocated, so its size is one the file holds, not one config.json claims.
const float* TensorReader::fuse(
  const std::vector<std::pair<std::string, std::vector<int64_t>>>& parts) {
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

FloatTensor TensorReader::read(const std::string& name, const std::vector<int64_t>& shape) {
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
void TensorReader::retain(const std::shared_ptr<WeightStorage>& storage) {
  auto& kept = model_.storage;
  if (std::find(kept.begin(), kept.end(), storage) == kept.end()) kept.push_back(storage);
}

float* TensorReader::copy(const std::string& name, const std::vector<int64_t>& shape) {
  const FloatTensor t = read(name, shape);
  float* owned = model_.allocate(t.numel);
  if (t.numel) std::memcpy(owned, t.data, t.numel * sizeof(float));
  return owned;
}

}  // namespace ph
