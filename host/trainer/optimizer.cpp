#include "host/trainer/optimizer.h"

#include <cmath>

#include "models/common/error.h"

namespace ph::trainer {

double Schedule::at(int step) const {
  // As transformers' get_{linear,cosine,constant}_schedule_with_warmup, so a run here and a
  // PEFT run with Trainer see the same rates: step 0 has lr 0 (it only primes AdamW's
  // moments), step warmup_steps has the peak.
  if (warmup_steps > 0 && step < warmup_steps) return lr * step / (double)warmup_steps;
  if (kind == kConstant) return lr;
  const int decay_steps = std::max(1, total_steps - warmup_steps);
  const double progress = std::min(1.0, (step - warmup_steps) / (double)decay_steps);
  if (kind == kLinear) return lr * (1.0 - progress);
  return lr * 0.5 * (1.0 + std::cos(M_PI * progress));
}

Schedule::Kind parse_schedule(const std::string& name) {
  if (name == "linear") return Schedule::kLinear;
  if (name == "cosine") return Schedule::kCosine;
  if (name == "constant") return Schedule::kConstant;
  throw Error("--schedule: expected linear, cosine or constant, got \"" + name + "\"");
}

AdamW::AdamW(AdamWOptions options, const std::vector<size_t>& numels) : o_(options) {
  for (size_t n : numels) {
    m_.emplace_back(n, 0.0f);
    v_.emplace_back(n, 0.0f);
  }
}

double AdamW::update(const std::vector<ParamRef>& params, double lr, int step) {
  if (params.size() != m_.size()) throw Error("AdamW: parameter count changed");
  double sq = 0.0;
  for (const ParamRef& p : params)
    for (size_t i = 0; i < p.numel; ++i) sq += (double)p.grad[i] * p.grad[i];
  const double norm = std::sqrt(sq);
  const double clip =
      (o_.max_grad_norm > 0 && norm > o_.max_grad_norm) ? o_.max_grad_norm / (norm + 1e-6) : 1.0;
  const double c1 = 1.0 - std::pow(o_.beta1, step), c2 = 1.0 - std::pow(o_.beta2, step);
  for (size_t k = 0; k < params.size(); ++k) {
    const ParamRef& p = params[k];
    float* m = m_[k].data();
    float* v = v_[k].data();
    for (size_t i = 0; i < p.numel; ++i) {
      const double g = p.grad[i] * clip;
      m[i] = (float)(o_.beta1 * m[i] + (1 - o_.beta1) * g);
      v[i] = (float)(o_.beta2 * v[i] + (1 - o_.beta2) * g * g);
      const double update = (m[i] / c1) / (std::sqrt(v[i] / c2) + o_.eps);
      p.value[i] = (float)(p.value[i] - lr * (update + o_.weight_decay * p.value[i]));
    }
  }
  return norm;
}

}  // namespace ph::trainer
