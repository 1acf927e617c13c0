#include "models/engine/embedding.h"

#include "models/engine/kernels.h"

namespace ph {

void InputNorm::forward(const Model& model, xt::xtensor<float, 2>& x) {
  const ModelConfig& c = model.config;
  if (!c.embed_norm) return;
  const size_t R = x.shape(0), D = c.dim;
  before_ = x;
  rstd_.resize({R});
  mean_.resize({R});
  norm_forward(model.embed_norm, c.norm_eps, (int)R, (int)D, before_.data(), x.data(), mean_.data(),
               rstd_.data());
}

void InputNorm::backward(const Model& model, xt::xtensor<float, 2>& dx) {
  const ModelConfig& c = model.config;
  if (!c.embed_norm) return;
  const size_t R = dx.shape(0), D = c.dim;
  scratch_.resize({R, D});
  norm_backward(model.embed_norm, (int)R, (int)D, before_.data(), mean_.data(), rstd_.data(),
                dx.data(), scratch_.data(), false);
  std::swap(dx, scratch_);
}

}  // namespace ph
