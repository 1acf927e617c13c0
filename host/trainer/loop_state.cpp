#include "host/trainer/loop_state.h"

#include "host/trainer/json_fields.h"

namespace ph::trainer {

namespace {

// A metrics line as the checkpoint's writer reads it back: an object with its step, and
// numeric losses.
void check_metric(const nlohmann::json& m, const JsonPlace& place) {
  json_field<int>(m, "step", place);
  for (const char* key : {"loss", "eval_loss"}) json_field_or<double>(m, key, 0.0, place);
}

}  // namespace

nlohmann::json LoopState::to_json() const {
  return {{"step", step},
          {"epoch", epoch},
          {"batch_index", batch_index},
          {"best_eval", std::isfinite(best_eval) ? nlohmann::json(best_eval) : nullptr},
          {"evals_without_improvement", evals_without_improvement},
          {"finished", finished},
          {"metrics", metrics},
          {"before", before}};
}

LoopState LoopState::from_json(const nlohmann::json& j, int total_steps, const std::string& file) {
  const JsonPlace place{file, "loop"};
  LoopState s;
  auto count = [&](const char* key, int max) {
    const int v = json_field<int>(j, key, place);
    if (v < 0 || v > max)
      (place / key)
          .fail("= " + std::to_string(v) + " is out of range [0, " + std::to_string(max) + "]");
    return v;
  };
  s.step = count("step", total_steps);
  s.epoch = count("epoch", std::numeric_limits<int>::max());
  s.batch_index = count("batch_index", std::numeric_limits<int>::max());
  const nlohmann::json& best = json_member(j, "best_eval", place);
  s.best_eval = best.is_null() ? INFINITY : json_as<double>(best, place / "best_eval");
  s.evals_without_improvement = count("evals_without_improvement", std::numeric_limits<int>::max());
  // An older PromptHost's state has no "finished": its runs ended at their last step.
  s.finished = json_field_or<bool>(j, "finished", s.step >= total_steps, place);
  s.metrics = json_field<std::vector<nlohmann::json>>(j, "metrics", place);
  for (size_t i = 0; i < s.metrics.size(); ++i)
    check_metric(s.metrics[i], place / "metrics" / std::to_string(i));
  s.before = json_member(j, "before", place);
  if (!s.before.is_null()) eval_from_json(s.before, file, "loop.before");
  return s;
}

nlohmann::json eval_json(const EvalResult& r) {
  nlohmann::json j = {
      {"eval_loss", r.loss}, {"eval_perplexity", r.perplexity}, {"eval_examples", r.examples}};
  if (r.has_outputs) {
    j["exact_match"] = r.exact_match;
    if (r.rank_candidates >= 2) j["rank_accuracy"] = r.rank_accuracy;
  }
  if (r.classification) {
    j["accuracy"] = r.accuracy;
    j["macro_f1"] = r.macro_f1;
  }
  if (r.has_distill) j["eval_distill_loss"] = r.distill_loss;
  return j;
}

EvalResult eval_from_json(const nlohmann::json& j, const std::string& file,
                          const std::string& field) {
  const JsonPlace place{file, field};
  if (!j.is_object()) place.fail("must be an object");
  EvalResult r;
  r.loss = json_field_or<double>(j, "eval_loss", 0.0, place);
  r.perplexity = json_field_or<double>(j, "eval_perplexity", 0.0, place);
  r.examples = json_field_or<int>(j, "eval_examples", 0, place);
  r.has_outputs = j.contains("exact_match");
  r.exact_match = json_field_or<double>(j, "exact_match", 0.0, place);
  r.rank_accuracy = json_field_or<double>(j, "rank_accuracy", 0.0, place);
  r.rank_candidates = j.contains("rank_accuracy") ? 2 : 0;
  r.has_distill = j.contains("eval_distill_loss");
  r.distill_loss = json_field_or<double>(j, "eval_distill_loss", 0.0, place);
  r.classification = j.contains("accuracy");
  r.accuracy = json_field_or<double>(j, "accuracy", 0.0, place);
  r.macro_f1 = json_field_or<double>(j, "macro_f1", 0.0, place);
  return r;
}

}  // namespace ph::trainer
