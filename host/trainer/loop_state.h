// Where the training loop is and what it has seen: the part of trainer_state.json that
// --resume continues from (beside the parameters in training_state.safetensors).
#pragma once

#include <cmath>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "host/trainer/evaluation.h"

namespace ph::trainer {

struct LoopState {
  int step = 0;
  int epoch = 0;
  int batch_index = 0;  // micro-batches of the current epoch already consumed
  double best_eval = INFINITY;
  int evals_without_improvement = 0;
  bool finished = false;                // the run ended (last step, or early stopping)
  std::vector<nlohmann::json> metrics;  // metrics.jsonl lines
  nlohmann::json before = nullptr;      // evaluation before training

  nlohmann::json to_json() const;
  // From trainer_state.json's "loop" (at `file`), every field checked: a missing or
  // mistyped field, a negative position or a step past `total_steps` is a ph::Error naming
  // the file and the field.
  static LoopState from_json(const nlohmann::json& j, int total_steps, const std::string& file);
};

// An evaluation as metrics.jsonl and trainer_state.json keep it, and back.
nlohmann::json eval_json(const EvalResult& result);
EvalResult eval_from_json(const nlohmann::json& j, const std::string& file,
                          const std::string& field);

}  // namespace ph::trainer
