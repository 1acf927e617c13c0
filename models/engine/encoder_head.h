// The classification heads of encoders, on the final hidden state h0 of each sequence's
// first row: bert's tanh(pooler(h0)) -> classifier (the pooler frozen, part of the
// model), roberta's classifier.dense -> tanh -> classifier.out_proj. Both are
//   z = tanh(A h0 + a),  logits = C z + c,
// and differ in whether A is trained (roberta) or frozen (bert).
#pragma once

#include <string>
#include <vector>

#include <xtensor/xtensor.hpp>

#include "models/engine/model.h"

namespace ph {

struct HeadTensorSpec {
  std::string name;  // transformers' module path, e.g. "classifier.out_proj.weight"
  std::vector<size_t> shape;
};

// The trained tensors of the model's head (config.classifier) for `classes` classes, in
// a fixed order; empty for a model without an encoder head.
std::vector<HeadTensorSpec> encoder_head_tensors(const ModelConfig& config, int classes);

class EncoderHead {
 public:
  // Binds the trained tensors (Injection::head, or Model::classifier), which must outlive
  // the head. Throws ph::Error naming a missing, unexpected or misshapen tensor.
  EncoderHead(const Model& model, const NamedTensors& trained);

  int classes() const { return classes_; }
  // logits[rows, classes] from h0[rows, dim]; keeps z for backward.
  void forward(int rows, const float* h0, float* logits);
  // From d loss / d logits [rows, classes]: every trained tensor's gradient (grads gets
  // one per trained tensor, overwritten) and d loss / d h0 [rows, dim].
  void backward(int rows, const float* h0, const float* dlogits, NamedTensors& grads,
                float* dh0) const;

 private:
  Linear dense_;            // A: bert's pooler or roberta's classifier.dense
  Linear out_;              // C: bert's classifier or roberta's classifier.out_proj
  std::string dense_name_;  // module path of A; "" when A is frozen (bert's pooler)
  std::string out_name_;
  int classes_ = 0;
  xt::xtensor<float, 2> z_;  // tanh(A h0 + a) [rows, dim]
};

}  // namespace ph
