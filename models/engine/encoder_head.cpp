#include "models/engine/encoder_head.h"

#include <cmath>
#include <tuple>

#include "models/common/error.h"
#include "models/engine/linear.h"

namespace ph {

namespace {

// Module paths of A (empty: frozen) and C.
std::pair<std::string, std::string> head_modules(ClassifierHead head) {
  if (head == ClassifierHead::kPooler) return {"", "classifier"};
  if (head == ClassifierHead::kDenseTanh) return {"classifier.dense", "classifier.out_proj"};
  return {"", ""};
}

std::string shape_text(const std::vector<size_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

}  // namespace

std::vector<HeadTensorSpec> encoder_head_tensors(const ModelConfig& c, int classes) {
  const auto [dense, out] = head_modules(c.classifier);
  if (out.empty()) return {};
  const size_t D = c.dim, C = classes;
  std::vector<HeadTensorSpec> specs;
  if (!dense.empty()) {
    specs.push_back({dense + ".weight", {D, D}});
    specs.push_back({dense + ".bias", {D}});
  }
  specs.push_back({out + ".weight", {C, D}});
  specs.push_back({out + ".bias", {C}});
  return specs;
}

EncoderHead::EncoderHead(const Model& model, const NamedTensors& trained) {
  const ModelConfig& c = model.config;
  std::tie(dense_name_, out_name_) = head_modules(c.classifier);
  if (out_name_.empty())
    throw Error(std::string("a ") + arch_name(c.arch) +
                " model has no encoder classification head");
  const auto out_w = trained.find(out_name_ + ".weight");
  if (out_w == trained.end() || out_w->second.dimension() != 2)
    throw Error("classification head: tensor '" + out_name_ + ".weight' [classes, " +
                std::to_string(c.dim) + "] is missing");
  classes_ = (int)out_w->second.shape(0);
  if (classes_ < 1) throw Error("classification head: '" + out_name_ + ".weight' has no classes");
  const auto specs = encoder_head_tensors(c, classes_);
  for (const auto& spec : specs) {
    const auto it = trained.find(spec.name);
    if (it == trained.end())
      throw Error("classification head: tensor '" + spec.name + "' is missing");
    const std::vector<size_t> shape(it->second.shape().begin(), it->second.shape().end());
    if (shape != spec.shape)
      throw Error("classification head: tensor '" + spec.name + "' has shape " + shape_text(shape) +
                  ", the model needs " + shape_text(spec.shape));
  }
  if (trained.size() != specs.size())
    for (const auto& [name, tensor] : trained) {
      bool known = false;
      for (const auto& spec : specs) known = known || spec.name == name;
      if (!known)
        throw Error("classification head: tensor '" + name + "' is not part of a " +
                    arch_name(c.arch) + " head");
    }
  auto linear = [&](const std::string& module, int out) {
    return Linear{trained.at(module + ".weight").data(), trained.at(module + ".bias").data(), c.dim,
                  out, false};
  };
  if (dense_name_.empty()) {
    if (!model.pooler.w) throw Error("classification head: the model has no pooler");
    dense_ = model.pooler;
  } else {
    dense_ = linear(dense_name_, c.dim);
  }
  out_ = linear(out_name_, classes_);
}

void EncoderHead::forward(int rows, const float* h0, float* logits) {
  const int D = dense_.out;
  z_.resize({(size_t)rows, (size_t)D});
  linear_forward(dense_, rows, h0, D, z_.data(), D);
  for (float& v : z_) v = std::tanh(v);
  linear_forward(out_, rows, z_.data(), D, logits, classes_);
}

void EncoderHead::backward(int rows, const float* h0, const float* dlogits, NamedTensors& grads,
                           float* dh0) const {
  const int D = dense_.out, C = classes_;
  // d linear: dW = dyᵀ x, db = Σ_rows dy
  auto weight_grads = [&](const std::string& module, int out, const float* dy, const float* x) {
    xt::xarray<float> dw = xt::zeros<float>({(size_t)out, (size_t)D});
    xt::xarray<float> db = xt::zeros<float>({(size_t)out});
    if (rows > 0) gemm(true, false, out, D, rows, 1.0f, dy, out, x, D, 0.0f, dw.data(), D);
    for (int r = 0; r < rows; ++r)
      for (int o = 0; o < out; ++o) db(o) += dy[(size_t)r * out + o];
    grads[module + ".weight"] = std::move(dw);
    grads[module + ".bias"] = std::move(db);
  };
  weight_grads(out_name_, C, dlogits, z_.data());
  xt::xtensor<float, 2> dpre = xt::empty<float>({(size_t)rows, (size_t)D});
  linear_backward_input(out_, rows, dlogits, C, dpre.data(), D, false);
  for (size_t i = 0; i < dpre.size(); ++i) dpre.data()[i] *= 1.0f - z_.data()[i] * z_.data()[i];
  if (!dense_name_.empty()) weight_grads(dense_name_, D, dpre.data(), h0);
  linear_backward_input(dense_, rows, dpre.data(), D, dh0, D, false);
}

}  // namespace ph
