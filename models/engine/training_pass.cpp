// TrainingPass chooses the implementation for the model's stacks (pass_impl.h).
#include "models/common/error.h"
#include "models/engine/engine.h"
#include "models/engine/pass_impl.h"

namespace ph {

namespace {

std::unique_ptr<PassImpl> make_pass(const Model& model, PassOptions options) {
  switch (model.config.stacks) {
    case Stacks::kDecoder:
      return make_decoder_pass(model, options);
    case Stacks::kEncoder:
      return make_encoder_pass(model, options);
    case Stacks::kEncoderDecoder:
      return make_seq2seq_pass(model, options);
  }
  throw Error(std::string("no training pass for the stacks of a ") + arch_name(model.config.arch) +
              " model");
}

}  // namespace

TrainingPass::TrainingPass(const Model& model, PassOptions options)
    : impl_(make_pass(model, options)) {}
TrainingPass::~TrainingPass() = default;

double TrainingPass::forward(const std::vector<Sequence>& batch, const Injection& injection) {
  return impl_->forward(batch, injection);
}
void TrainingPass::backward(InjectionGrad& grad) {
  impl_->backward(grad);
}
int TrainingPass::scored_count() const {
  return impl_->scored_count();
}
int TrainingPass::loss_count() const {
  return impl_->loss_count();
}
double TrainingPass::step_flops() const {
  return impl_->step_flops();
}
const std::vector<double>& TrainingPass::sequence_nll() const {
  return impl_->sequence_nll();
}
const std::vector<int>& TrainingPass::sequence_scored() const {
  return impl_->sequence_scored();
}
const std::vector<xt::xtensor<float, 2>>& TrainingPass::logits() const {
  return impl_->logits();
}

}  // namespace ph
