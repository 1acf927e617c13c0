// Sequence classification on decoders (ClassifierHead::kLastToken, transformers'
// LlamaForSequenceClassification and the same `score` head on the other decoder families):
// logits = score · final_norm(h) at each sequence's last real token, mean cross-entropy
// over the sequences that have a class. Padding is never computed on, so the last row of a
// sequence is its last real token (PEFT feeding embeddings takes the last position, padded
// or not: PEFT issue #764).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <xtensor/xtensor.hpp>

#include "models/engine/model.h"

namespace ph {

constexpr const char* kScoreWeight = "score.weight";  // [classes, dim], no bias

class LastTokenHead {
 public:
  // `head`: the trained head (Injection::head) or, when empty, the model's own
  // (Model::classifier); it must hold exactly score.weight [classes, dim] (ph::Error
  // naming the tensor otherwise). rows[b]: the row of final_x [rows, dim] holding sequence
  // b's last token; labels[b]: its class or kIgnoreLabel. Returns the mean cross-entropy
  // over the labelled sequences (0 when none is). The head must outlive the backward call.
  double forward(const Model& model, const NamedTensors& head, const xt::xtensor<float, 2>& final_x,
                 const std::vector<int>& rows, const std::vector<int32_t>& labels);
  int scored() const { return scored_; }
  // Per sequence: its logits [classes], and the cross-entropy of its class (0 if none).
  const xt::xtensor<float, 2>& logits() const { return logits_; }
  const std::vector<double>& nll() const { return nll_; }
  // dy [rows, dim] += d loss / d final_x at the sequences' rows; head_grad gets
  // d loss / d score.weight under that name.
  void backward(const Model& model, xt::xtensor<float, 2>& dy, NamedTensors& head_grad) const;

 private:
  const xt::xarray<float>* weight_ = nullptr;
  std::vector<int> rows_;
  xt::xtensor<float, 2> gathered_, normed_, logits_, dlogits_;
  xt::xtensor<float, 1> mean_, rstd_;
  std::vector<double> nll_;
  int scored_ = 0;
};

}  // namespace ph
