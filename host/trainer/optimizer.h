// AdamW over a method's parameters, with warmup then linear or cosine decay, global
// gradient-norm clipping. The moments are plain arrays so a checkpoint can save and
// restore them exactly.
#pragma once

#include <string>
#include <vector>

namespace ph::trainer {

struct Schedule {
  enum Kind { kConstant, kLinear, kCosine } kind = kLinear;
  double lr = 3e-2;
  int warmup_steps = 0;
  int total_steps = 1;
  // Learning rate at optimizer step `step` (0-based): linear warmup from 0 (step 0) to lr
  // (step warmup_steps), then decay to 0 at total_steps (or constant): transformers'.
  double at(int step) const;
};
Schedule::Kind parse_schedule(const std::string& name);  // "linear", "cosine", "constant"

struct AdamWOptions {
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;
  double max_grad_norm = 1.0;  // <= 0: no clipping
};

// One parameter tensor the optimizer updates: value and gradient of numel floats.
struct ParamRef {
  float* value;
  const float* grad;
  size_t numel;
};

class AdamW {
 public:
  AdamW(AdamWOptions options, const std::vector<size_t>& numels);
  // Clips the gradients' global L2 norm (returned, before clipping), then updates every
  // parameter with learning rate lr. `step` counts from 1 (bias correction).
  double update(const std::vector<ParamRef>& params, double lr, int step);

  std::vector<std::vector<float>>& first_moments() { return m_; }
  std::vector<std::vector<float>>& second_moments() { return v_; }

 private:
  AdamWOptions o_;
  std::vector<std::vector<float>> m_, v_;
};

}  // namespace ph::trainer
