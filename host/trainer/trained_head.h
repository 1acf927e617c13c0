// The classification head a SEQ_CLS run trains with the prompt, as PEFT does through
// modules_to_save: it starts from the base model's head (Model::classifier), goes to the
// engine as Injection::head, is updated by the same AdamW, schedule and gradient clipping
// as the method's parameters, and is saved in adapter_model.safetensors under PEFT's names
// ("base_model." + transformers' module path: base_model.classifier.weight,
// base_model.classifier.dense.weight, base_model.score.weight, ...).
#pragma once

#include <string>
#include <vector>

#include "host/trainer/optimizer.h"
#include "models/engine/engine.h"
#include "models/loader/safetensors.h"

namespace ph::trainer {

// PEFT's modules_to_save for SEQ_CLS, as adapter_config.json lists them (PEFT itself
// writes the list twice; reading accepts any repetition).
extern const std::vector<std::string> kHeadModules;  // {"classifier", "score"}
constexpr const char* kPeftHeadPrefix = "base_model.";

// Whether an adapter tensor is a saved head tensor ("base_model.classifier...",
// "base_model.score...") rather than the method's.
bool is_head_tensor(const std::string& adapter_name);

class TrainedHead {
 public:
  // The tensors of the base model's head under kHeadModules (BERT's pooler is not among
  // them and stays frozen, as in PEFT); empty for a model without a head.
  static TrainedHead of_model(const Model& model);

  bool empty() const { return names_.empty(); }
  const std::vector<std::string>& names() const { return names_; }
  const NamedTensors& values() const { return values_; }
  size_t parameter_count() const;

  // The optimizer's view: value and gradient of each tensor, in names() order.
  std::vector<ParamRef> refs();
  std::vector<size_t> numels() const;
  void zero_grad();
  // Adds scale · the engine's gradient (InjectionGrad::head) to the gradients.
  void accumulate(const NamedTensors& grad, float scale);

  // The tensors as adapter_model.safetensors holds them (PEFT's names; views into this).
  std::vector<TensorToWrite> adapter_tensors() const;
  // Takes the head tensors of an adapter file (each must be one of this head's, with
  // its shape); returns false when the file holds none (the base model's head is used).
  // Throws ph::Error naming the file and the tensor otherwise.
  bool load_adapter(const SafetensorsFile& file);

 private:
  std::vector<std::string> names_;
  NamedTensors values_, grads_;
};

}  // namespace ph::trainer
