// The training loop: a method plugin's parameters trained through the frozen model on
// JSONL data with AdamW, evaluated, checkpointed so that --resume continues exactly.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "host/trainer/evaluation.h"
#include "host/trainer/optimizer.h"

namespace ph::trainer {

struct TrainConfig {
  std::string plugin;                     // name or .so path
  std::vector<std::string> plugin_paths;  // --plugin-path
  std::string model;                      // HF folder or .bin
  std::string tokenizer;                  // "" = beside the model
  std::string task_type;                  // --task-type: PEFT's name; "" = the model's
  std::string data, eval_data, output_dir;
  nlohmann::json method_config = nlohmann::json::object();  // --config adapter_config.json
  std::vector<std::string> set;                             // --set key=value
  int epochs = 1;
  int max_steps = 0;  // > 0 overrides epochs
  int batch_size = 8;
  int max_batch_tokens = 0;  // 0: no token budget
  int grad_accum = 1;
  int max_length = 0;  // 0: the model's context
  double lr = 3e-2;
  std::string schedule = "linear";
  double warmup_ratio = 0.0;
  int warmup_steps = -1;  // >= 0 overrides warmup_ratio
  AdamWOptions adamw;
  uint64_t seed = 42;
  int threads = 0;
  int eval_every = 0;  // steps; 0: only before and after
  int patience = 0;    // evaluations without improvement before stopping; 0: never
  int save_every = 0;  // steps; 0: only at the end
  int stop_after = 0;  // stop (after saving) at this step, as an interruption would
  int log_every = 10;
  bool recompute = false;
  bool eval_generate = true;  // exact match needs generation
  bool quiet = false;
  bool overwrite = false;  // replace a run already in output_dir (else refused)

  // The settings trainer_state.json keeps (not threads, stop_after, quiet, overwrite).
  nlohmann::json to_json() const;
  // Throws ph::Error naming `file` and the field for a missing or mistyped setting.
  static TrainConfig from_json(const nlohmann::json& j, const std::string& file);
};

// Checks every setting's range (batch size >= 1, a finite learning rate >= 0, ...).
// Throws OptionError (option_checks.h) naming the option, e.g. "--lr must be ...".
void check_train_options(const TrainConfig& config);

struct TrainSummary {
  std::string output_dir;
  std::string plugin;
  bool per_task = false;                // the method keeps a prompt per task (multitask)
  std::vector<std::string> task_names;  // the names the data gave tasks (may be empty)
  std::string task_type;                // CAUSAL_LM, SEQ_2_SEQ_LM or SEQ_CLS
  size_t trainable_parameters = 0;
  int steps = 0;
  int total_steps = 0;
  double seconds = 0.0;
  double last_loss = 0.0;
  bool evaluated = false;
  EvalResult before, after;
  int truncated_examples = 0;
  bool stopped_early = false;
  bool already_finished = false;  // a resumed run that had finished: nothing was done
};

// Trains as configured (or continues the run in `resume_dir`, with its saved settings;
// the saved method is looked up by name on the search path of config.plugin_paths, or
// is config.plugin when given: both from the command line, never from the run's files).
// Throws ph::Error on any problem (bad data, unknown option, missing model, ...), and
// OptionError for a setting out of range, before any work. The output folder is checked
// first: it must be writable and hold no other run (unless config.overwrite).
TrainSummary train(const TrainConfig& config, const std::string& resume_dir = "");

}  // namespace ph::trainer
