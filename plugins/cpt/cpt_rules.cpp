#include "cpt_rules.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <set>

namespace cpt {

std::vector<float> projection_epsilons(const std::vector<int64_t>& types, int dim, double input_eps,
                                       double format_eps) {
  // PEFT: float32 tensors times Python floats, so every product is float32.
  const float scale = std::sqrt((float)(dim / 2048.0));
  std::vector<float> eps(types.size(), 1e-10f);
  for (size_t i = 0; i < types.size(); ++i) {
    if (types[i] <= 0) continue;
    const int64_t r = types[i] % 4;
    if (r == 1 || r == 3) eps[i] = (float)format_eps * scale;
    if (r == 2) eps[i] = (float)input_eps * scale;
  }
  return eps;
}

void project(float* delta, int rows, int dim, const std::vector<float>& eps) {
  for (int i = 0; i < rows; ++i) {
    float* row = delta + (size_t)i * dim;
    float sq = 0.0f;  // the norm in the parameter's dtype, as torch.norm computes it
    for (int d = 0; d < dim; ++d) sq += row[d] * row[d];
    const float norm = std::sqrt(sq);
    if (norm <= 0.0f) continue;
    const float scale = eps[i] / std::max(norm, eps[i]);
    for (int d = 0; d < dim; ++d) row[d] *= scale;
  }
}

void score_sequence(const LossSettings& s, int64_t length, const int64_t* slots,
                    const int64_t* kinds, int64_t* labels, float* weights) {
  const int64_t shift = s.types.empty() ? 0 : *std::max_element(s.types.begin(), s.types.end());
  std::vector<int64_t> type(length);
  for (int64_t t = 0; t < length; ++t) {
    if (slots[t] >= 0) {  // a context row: its own token is its label
      type[t] = s.types[slots[t]];
      labels[t] = s.token_ids[slots[t]];
    } else {  // PEFT adds max(context types) to the caller's positive types
      type[t] = kinds[t] > 0 ? kinds[t] + shift : 0;
    }
    if (!is_label_type(type[t])) labels[t] = -100;
    weights[t] = 1.0f;
  }
  if (!s.decay) return;
  // distinct label types among the targets (positions 1..), largest first: 1, f, f^2, ...
  std::set<int64_t, std::greater<int64_t>> present;
  for (int64_t t = 1; t < length; ++t)
    if (is_label_type(type[t])) present.insert(type[t]);
  int j = 0;
  for (int64_t label_type : present) {
    const float w = (float)std::pow(s.decay_factor, j++);  // stored in float32 by PEFT
    for (int64_t t = 1; t < length; ++t)
      if (type[t] == label_type) weights[t] = w;
  }
}

}  // namespace cpt
