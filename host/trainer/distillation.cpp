#include "host/trainer/distillation.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>

#include "models/common/error.h"

namespace ph::trainer {

SoftTarget top_k_target(const float* logits, int vocab, const TeacherSettings& settings) {
  const double inv_t = 1.0 / std::max(settings.temperature, 1e-5f);
  const double top = *std::max_element(logits, logits + vocab) * inv_t;
  std::vector<double> p(vocab);
  double sum = 0.0;
  for (int v = 0; v < vocab; ++v) sum += p[v] = std::exp(logits[v] * inv_t - top);
  const int k = std::min(settings.top_k, vocab);
  std::vector<int32_t> order(vocab);
  std::iota(order.begin(), order.end(), 0);
  std::partial_sort(order.begin(), order.begin() + k, order.end(),
                    [&](int32_t a, int32_t b) { return p[a] > p[b] || (p[a] == p[b] && a < b); });
  SoftTarget t;
  t.ids.assign(order.begin(), order.begin() + k);
  for (int32_t id : t.ids) t.probs.push_back((float)(p[id] / sum));
  return t;
}

std::vector<SoftTarget> teacher_targets(const Model& model, const std::vector<int32_t>& context,
                                        const std::vector<int32_t>& tokens,
                                        const TeacherSettings& settings) {
  const size_t length = context.size() + tokens.size();
  if ((long)length > model.config.max_positions)
    throw Error("distillation: the teacher's context of " + std::to_string(context.size()) +
                " tokens plus the example's " + std::to_string(tokens.size()) +
                " exceed the model's context of " + std::to_string(model.config.max_positions) +
                " (shorten the text or give examples a shorter \"context\")");
  std::vector<SoftTarget> out(tokens.size());
  if (tokens.size() < 2) return out;
  Sequence teacher;
  teacher.tokens = context;
  teacher.tokens.insert(teacher.tokens.end(), tokens.begin(), tokens.end());
  TrainingPass pass(model, PassOptions{false, true});
  pass.forward({teacher}, Injection{});
  const auto& logits = pass.logits().at(0);  // [length, vocab]
  const int V = model.config.vocab_size;
  for (size_t t = 1; t < tokens.size(); ++t)
    out[t] = top_k_target(&logits(context.size() + t - 1, 0), V, settings);
  return out;
}

const std::vector<SoftTarget>& TeacherCache::targets(size_t example,
                                                     const std::vector<int32_t>& context,
                                                     const std::vector<int32_t>& tokens) {
  auto it = cache_.find(example);
  if (it == cache_.end())
    it = cache_.emplace(example, teacher_targets(model_, context, tokens, settings_)).first;
  return it->second;
}

}  // namespace ph::trainer
