// The files a run reads (model, tokenizer, training and evaluation data), recorded in
// trainer_state.json so that --resume reads the same files from any current folder and
// notices when they changed: absolute paths, the size and SHA-256 of the tokenizer and
// data files, the model's facts (model_fingerprint).
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "host/trainer/trainer.h"
#include "models/config/model_config.h"

namespace ph::trainer {

struct RunInputs {
  std::string model, tokenizer, data, eval_data;     // the paths to read ("" eval_data: none)
  nlohmann::json record = nlohmann::json::object();  // trainer_state.json's "inputs"

  // A new run: the configured paths made absolute, the files' digests taken.
  static RunInputs of_new_run(const TrainConfig& config);
  // A resumed run: the paths in `state` (trainer_state.json, at `file`), each file checked
  // against its recorded digest; `given` data paths (--data, --eval-data) replace recorded
  // ones when their content is the recorded one (the data moved). A state file without
  // "inputs" (an older PromptHost's) gives the saved config's paths, recorded now, and a
  // warning in `warnings`. Throws ph::Error naming the file that changed or is gone.
  static RunInputs of_resumed_run(const nlohmann::json& state, const TrainConfig& saved,
                                  const TrainConfig& given, const std::string& file,
                                  std::vector<std::string>& warnings);

  // Records the model's facts (a new run) or checks they are the recorded ones.
  void check_model(const ModelConfig& config);
};

}  // namespace ph::trainer
