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
                                        const TeacherSettings& settings, bool drop_first) {
  if (drop_first && context.empty())
    throw Error("distillation: dropping the example's first token needs a context");
  const size_t skip = drop_first && !tokens.empty() ? 1 : 0;
  const size_t length = context.size() + tokens.size() - skip;
  if ((long)length > model.config.max_positions)
    throw Error("distillation: the teacher's context of " + std::to_string(context.size()) +
                " tokens plus the example's " + std::to_string(tokens.size() - skip) +
                " exceed the model's context of " + std::to_string(model.config.max_positions) +
                " (shorten the text or give examples a shorter \"context\")");
  std::vector<SoftTarget> out(tokens.size());
  if (tokens.size() < 2) return out;
  Sequence teacher;
  teacher.tokens = context;
  teacher.tokens.insert(teacher.tokens.end(), tokens.begin() + skip, tokens.end());
  TrainingPass pass(model, PassOptions{false, true});
  pass.forward({teacher}, Injection{});
  const auto& logits = pass.logits().at(0);  // [length, vocab]
  const int V = model.config.vocab_size;
  for (size_t t = 1; t < tokens.size(); ++t)
    out[t] = top_k_target(&logits(context.size() + t - 1 - skip, 0), V, settings);
  return out;
}

const std::vector<SoftTarget>& TeacherCache::targets(size_t example,
                                                     const std::vector<int32_t>& context,
                                                     const std::vector<int32_t>& tokens,
                                                     bool drop_first) {
  auto it = cache_.find(example);
  if (it == cache_.end())
    it = cache_.emplace(example, teacher_targets(model_, context, tokens, settings_, drop_first))
             .first;
  return it->second;
}

Distiller::Distiller(const Model& model, const Tokenizer* tokenizer,
                     const host::MethodInstance::Teacher& teacher)
    : model_(model),
      tokenizer_(tokenizer),
      context_(teacher.context_ids),
      labeled_only_(teacher.labeled_only),
      caches_{TeacherCache(model, {teacher.top_k, teacher.temperature}),
              TeacherCache(model, {teacher.top_k, teacher.temperature})} {}

std::vector<int32_t> Distiller::context_of(const Example& example, const std::string& where) const {
  if (!example.has_context) {
    if (context_.empty())
      throw Error(where + ": no \"context\" field, and the method gives the teacher no text");
    return context_;
  }
  if (!tokenizer_) throw Error(where + ": a \"context\" needs a tokenizer");
  std::vector<int32_t> ids;
  const int bos = model_.config.bos_id >= 0 ? model_.config.bos_id : tokenizer_->bos_id();
  if (bos >= 0) ids.push_back(bos);
  const std::vector<int32_t> body = tokenizer_->encode(example.context);
  ids.insert(ids.end(), body.begin(), body.end());
  return ids;
}

void Distiller::attach(int set, size_t index, const Example& example, const std::string& file,
                       Sequence& seq) {
  const std::string where = file + ":" + std::to_string(example.line);
  for (int32_t t : seq.tokens)
    if (is_virtual(t)) throw Error(where + ": distillation of a method with virtual tokens");
  const std::vector<int32_t> context = context_of(example, where);
  const int bos = model_.config.bos_id;
  const bool drop_first = !seq.tokens.empty() && bos >= 0 && seq.tokens[0] == bos &&
                          !context.empty() && context[0] == bos;
  try {
    seq.soft_targets = caches_[set].targets(index, context, seq.tokens, drop_first);
  } catch (const Error& e) {
    throw Error(where + ": " + e.what());
  }
  if (labeled_only_)
    for (size_t t = 0; t < seq.soft_targets.size(); ++t)
      if (t >= seq.labels.size() || seq.labels[t] == kIgnoreLabel) seq.soft_targets[t] = {};
  seq.labels.clear();
}

double distillation_eval(const Model& model, host::MethodInstance& method, Distiller& distiller,
                         const std::vector<Example>& examples, const std::vector<Encoded>& encoded,
                         const std::string& file, int batch_size) {
  TrainingPass pass(model);
  double sum = 0.0;
  int rows = 0;
  for (size_t b0 = 0; b0 < encoded.size(); b0 += batch_size) {
    std::vector<Sequence> batch;
    for (size_t i = b0; i < std::min(encoded.size(), b0 + batch_size); ++i) {
      batch.push_back(encoded[i].sequence);
      distiller.attach(1, i, examples[i], file, batch.back());
    }
    pass.forward(batch, method.forward((int64_t)batch.size(), {}, false));
    for (size_t i = 0; i < batch.size(); ++i)
      if (pass.sequence_scored()[i] > 0) {
        sum += pass.sequence_nll()[i] / pass.sequence_scored()[i];
        ++rows;
      }
  }
  return rows ? sum / rows : 0.0;
}

}  // namespace ph::trainer
