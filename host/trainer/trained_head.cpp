#include "host/trainer/trained_head.h"

#include <algorithm>

#include "models/common/error.h"

namespace ph::trainer {

const std::vector<std::string> kHeadModules = {"classifier", "score"};

namespace {

bool in_head_module(const std::string& path) {
  return std::any_of(kHeadModules.begin(), kHeadModules.end(), [&](const std::string& m) {
    return path.compare(0, m.size() + 1, m + ".") == 0;
  });
}

std::vector<int64_t> shape_of(const xt::xarray<float>& t) {
  return std::vector<int64_t>(t.shape().begin(), t.shape().end());
}

}  // namespace

bool is_head_tensor(const std::string& name) {
  const std::string prefix = kPeftHeadPrefix;
  return name.compare(0, prefix.size(), prefix) == 0 && in_head_module(name.substr(prefix.size()));
}

TrainedHead TrainedHead::of_model(const Model& model) {
  TrainedHead h;
  for (const auto& [path, tensor] : model.classifier) {
    if (!in_head_module(path)) continue;
    h.names_.push_back(path);
    h.values_[path] = tensor;
    h.grads_[path] = xt::zeros<float>(tensor.shape());
  }
  return h;
}

size_t TrainedHead::parameter_count() const {
  size_t n = 0;
  for (const auto& [path, t] : values_) n += t.size();
  return n;
}

std::vector<ParamRef> TrainedHead::refs() {
  std::vector<ParamRef> out;
  for (const auto& name : names_)
    out.push_back({values_[name].data(), grads_[name].data(), values_[name].size()});
  return out;
}

std::vector<size_t> TrainedHead::numels() const {
  std::vector<size_t> out;
  for (const auto& name : names_) out.push_back(values_.at(name).size());
  return out;
}

void TrainedHead::zero_grad() {
  for (auto& [path, g] : grads_) g.fill(0.0f);
}

void TrainedHead::accumulate(const NamedTensors& grad, float scale) {
  for (const auto& name : names_) {
    const auto it = grad.find(name);
    if (it == grad.end())
      throw Error("the engine gave no gradient for the classification head's " + name);
    if (it->second.size() != grads_[name].size())
      throw Error("the engine's gradient of " + name + " has " + std::to_string(it->second.size()) +
                  " elements, the head tensor " + std::to_string(grads_[name].size()));
    auto& g = grads_[name];
    for (size_t i = 0; i < g.size(); ++i) g.data()[i] += scale * it->second.data()[i];
  }
}

std::vector<TensorToWrite> TrainedHead::adapter_tensors() const {
  std::vector<TensorToWrite> out;
  for (const auto& name : names_) {
    const auto& t = values_.at(name);
    out.push_back(f32_tensor(kPeftHeadPrefix + name, shape_of(t), t.data()));
  }
  return out;
}

bool TrainedHead::load_adapter(const SafetensorsFile& file) {
  bool any = false;
  for (const TensorInfo& info : file.tensors()) {
    if (!is_head_tensor(info.name)) continue;
    const std::string path = info.name.substr(std::string(kPeftHeadPrefix).size());
    const auto it = values_.find(path);
    if (it == values_.end()) {
      std::string known;
      for (const auto& n : names_)
        known += (known.empty() ? "" : ", ") + std::string(kPeftHeadPrefix) + n;
      throw Error(file.path() + ": tensor " + info.name +
                  " is not part of this model's classification head (" +
                  (known.empty() ? std::string("the model has none") : "it has " + known) + ")");
    }
    const std::vector<int64_t> want = shape_of(it->second);
    if (info.shape != want)
      throw Error(file.path() + ": tensor " + info.name + " has shape " + shape_string(info.shape) +
                  ", this model's head needs " + shape_string(want));
    const FloatTensor f = file.to_float(info);
    std::copy_n(f.data, f.numel, it->second.data());
    any = true;
  }
  return any;
}

}  // namespace ph::trainer
