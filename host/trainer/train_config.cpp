// TrainConfig as trainer_state.json keeps it, and the range of every setting.
#include <type_traits>

#include "host/trainer/json_fields.h"
#include "host/trainer/option_checks.h"
#include "host/trainer/trainer.h"

namespace ph::trainer {

namespace {

// Every setting trainer_state.json keeps, listed once: to_json and from_json both walk
// this list (Config is TrainConfig or const TrainConfig).
template <class Config, class Visit>
void for_each_setting(Config& c, Visit&& visit) {
  visit("plugin", c.plugin);
  visit("plugin_paths", c.plugin_paths);
  visit("model", c.model);
  visit("tokenizer", c.tokenizer);
  visit("data", c.data);
  visit("eval_data", c.eval_data);
  visit("output_dir", c.output_dir);
  visit("method_config", c.method_config);
  visit("set", c.set);
  visit("epochs", c.epochs);
  visit("max_steps", c.max_steps);
  visit("batch_size", c.batch_size);
  visit("max_batch_tokens", c.max_batch_tokens);
  visit("grad_accum", c.grad_accum);
  visit("max_length", c.max_length);
  visit("lr", c.lr);
  visit("schedule", c.schedule);
  visit("warmup_ratio", c.warmup_ratio);
  visit("warmup_steps", c.warmup_steps);
  visit("weight_decay", c.adamw.weight_decay);
  visit("max_grad_norm", c.adamw.max_grad_norm);
  visit("seed", c.seed);
  visit("eval_every", c.eval_every);
  visit("patience", c.patience);
  visit("save_every", c.save_every);
  visit("log_every", c.log_every);
  visit("recompute", c.recompute);
  visit("eval_generate", c.eval_generate);
}

}  // namespace

nlohmann::json TrainConfig::to_json() const {
  nlohmann::json j = nlohmann::json::object();
  for_each_setting(*this, [&](const char* key, const auto& value) { j[key] = value; });
  j["task_type"] = task_type;
  return j;
}

TrainConfig TrainConfig::from_json(const nlohmann::json& j, const std::string& file) {
  TrainConfig c;
  const JsonPlace place{file, "config"};
  for_each_setting(c, [&](const char* key, auto& value) {
    value = json_field<std::decay_t<decltype(value)>>(j, key, place);
  });
  // Written since task types came (an older run's file has none: the model's own).
  c.task_type = json_field_or<std::string>(j, "task_type", "", place);
  return c;
}

void check_train_options(const TrainConfig& c) {
  check_int("--epochs", c.epochs, 1);
  check_int("--max-steps", c.max_steps, 0);
  check_int("--batch-size", c.batch_size, 1);
  check_int("--max-batch-tokens", c.max_batch_tokens, 0);
  check_int("--grad-accum", c.grad_accum, 1);
  check_int("--max-length", c.max_length, 0);
  check_number("--lr", c.lr, 0.0);
  check_choice("--schedule", c.schedule, {"linear", "cosine", "constant"});
  check_number("warmup_ratio", c.warmup_ratio, 0.0, 1.0);
  check_int("--warmup-steps", c.warmup_steps, -1);  // -1: from warmup_ratio
  check_number("--weight-decay", c.adamw.weight_decay, 0.0);
  check_number("--max-grad-norm", c.adamw.max_grad_norm, 0.0);
  check_int("--threads", c.threads, 0, kMaxThreads);
  check_int("--eval-every", c.eval_every, 0);
  check_int("--patience", c.patience, 0);
  check_int("--save-every", c.save_every, 0);
  check_int("--stop-after", c.stop_after, 0);
  check_int("log_every", c.log_every, 0);
}

}  // namespace ph::trainer
