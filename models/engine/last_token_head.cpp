#include "models/engine/last_token_head.h"

#include <algorithm>

#include "models/common/error.h"
#include "models/engine/engine.h"
#include "models/engine/kernels.h"
#include "models/engine/linear.h"

namespace ph {

namespace {

std::string shape_string(const xt::xarray<float>& t) {
  std::string s = "[";
  for (size_t i = 0; i < t.dimension(); ++i) s += (i ? ", " : "") + std::to_string(t.shape(i));
  return s + "]";
}

// The head's score.weight, checked: the only tensor of `head`, shaped [classes, dim].
const xt::xarray<float>& score_weight(const ModelConfig& c, const NamedTensors& head,
                                      const std::string& where) {
  for (const auto& [name, t] : head)
    if (name != kScoreWeight)
      throw Error(where + ": tensor '" + name + "' is not part of a decoder's classification " +
                  "head (only '" + kScoreWeight + "')");
  const auto it = head.find(kScoreWeight);
  if (it == head.end())
    throw Error(where + ": tensor '" + std::string(kScoreWeight) + "' is missing");
  const xt::xarray<float>& w = it->second;
  if (w.dimension() != 2 || w.shape(0) != (size_t)c.num_labels() || w.shape(1) != (size_t)c.dim)
    throw Error(where + ": tensor '" + std::string(kScoreWeight) + "' has shape " +
                shape_string(w) + ", the model needs [" + std::to_string(c.num_labels()) + ", " +
                std::to_string(c.dim) + "] ([classes, hidden])");
  return w;
}

}  // namespace

double LastTokenHead::forward(const Model& model, const NamedTensors& head,
                              const xt::xtensor<float, 2>& final_x, const std::vector<int>& rows,
                              const std::vector<int32_t>& labels) {
  const ModelConfig& c = model.config;
  weight_ = head.empty() ? &score_weight(c, model.classifier, "the model's classification head")
                         : &score_weight(c, head, "injection: classification head");
  rows_ = rows;
  const size_t B = rows.size(), D = c.dim, C = c.num_labels();
  gathered_.resize({B, D});
  normed_.resize({B, D});
  mean_.resize({B});
  rstd_.resize({B});
  for (size_t b = 0; b < B; ++b) std::copy_n(&final_x(rows[b], 0), D, &gathered_(b, 0));
  norm_forward(model.final_norm, c.norm_eps, (int)B, (int)D, gathered_.data(), normed_.data(),
               mean_.data(), rstd_.data());
  logits_.resize({B, C});
  gemm(false, true, (int)B, (int)C, (int)D, 1.0f, normed_.data(), (int)D, weight_->data(), (int)D,
       0.0f, logits_.data(), (int)C);

  scored_ =
      (int)std::count_if(labels.begin(), labels.end(), [](int32_t l) { return l != kIgnoreLabel; });
  // d loss / d logits = (softmax - onehot) / scored, for the labelled sequences only
  dlogits_ = xt::zeros<float>({B, C});
  nll_.assign(B, 0.0);
  double loss = 0.0;
  for (size_t b = 0; b < B; ++b) {
    if (labels[b] == kIgnoreLabel) continue;
    float* p = &dlogits_(b, 0);
    std::copy_n(&logits_(b, 0), C, p);
    const float lse = softmax_inplace((int)C, p);
    nll_[b] = (double)lse - logits_(b, labels[b]);
    loss += nll_[b];
    for (size_t k = 0; k < C; ++k) p[k] /= scored_;
    p[labels[b]] -= 1.0f / scored_;
  }
  return scored_ ? loss / scored_ : 0.0;
}

void LastTokenHead::backward(const Model& model, xt::xtensor<float, 2>& dy,
                             NamedTensors& head_grad) const {
  const ModelConfig& c = model.config;
  const size_t B = rows_.size(), D = c.dim, C = c.num_labels();
  xt::xarray<float> dweight = xt::zeros<float>({C, D});  // dlogitsᵀ · normed
  gemm(true, false, (int)C, (int)D, (int)B, 1.0f, dlogits_.data(), (int)C, normed_.data(), (int)D,
       0.0f, dweight.data(), (int)D);
  head_grad[kScoreWeight] = std::move(dweight);
  xt::xtensor<float, 2> dnormed = xt::empty<float>({B, D});  // dlogits · W
  gemm(false, false, (int)B, (int)D, (int)C, 1.0f, dlogits_.data(), (int)C, weight_->data(), (int)D,
       0.0f, dnormed.data(), (int)D);
  xt::xtensor<float, 2> dgathered = xt::empty<float>({B, D});
  norm_backward(model.final_norm, (int)B, (int)D, gathered_.data(), mean_.data(), rstd_.data(),
                dnormed.data(), dgathered.data(), false);
  for (size_t b = 0; b < B; ++b)  // rows may repeat (sequences made only of shared tokens)
    for (size_t k = 0; k < D; ++k) dy(rows_[b], k) += dgathered(b, k);
}

}  // namespace ph
