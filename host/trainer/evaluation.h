// Evaluation of a method on data: loss and perplexity of the scored tokens, and for
// input/output data the exact-match accuracy of the greedily generated output and the
// rank accuracy (is the expected output the most likely of all outputs in the data?);
// for SEQ_CLS (the model's config.task) accuracy, macro-F1 and the confusion matrix.
#pragma once

#include <string>
#include <vector>

#include "host/plugin/method_instance.h"
#include "host/trainer/dataset.h"
#include "host/trainer/ranks.h"
#include "host/trainer/task_encoding.h"
#include "models/tokenizer/tokenizer.h"

namespace ph::trainer {

struct EvalResult {
  int examples = 0;
  long scored_tokens = 0;
  double loss = 0.0;          // mean cross-entropy per scored token
  double perplexity = 0.0;    // exp(loss)
  bool has_outputs = false;   // input/output data: the accuracies below are meaningful
  double exact_match = 0.0;   // fraction
  double known_output = 0.0;  // fraction of generated outputs equal to some output in the data
  std::vector<std::string> generated;  // each example's greedy output (when generated)
  double rank_accuracy = 0.0;  // fraction; 0 when the data has over max_rank_candidates outputs
  int rank_candidates = 0;
  // SEQ_CLS: the predicted class of each example, the fraction right, the mean of each
  // class's F1 over the classes present in the data or the predictions (scikit-learn's
  // f1_score(average="macro")), and confusion[true][predicted] over all the model's classes.
  bool classification = false;
  std::vector<std::string> labels;
  std::vector<int> predicted;
  double accuracy = 0.0, macro_f1 = 0.0;
  std::vector<std::vector<int>> confusion;
  // Training by distillation: the loss against the teacher (distillation_eval).
  bool has_distill = false;
  double distill_loss = 0.0;
};

struct EvalOptions {
  // How the examples were encoded: rank accuracy re-encodes each example with every
  // candidate output, cut to the same length limit.
  TaskEncoding encoding;
  const NamedTensors* head = nullptr;  // SEQ_CLS: the trained head (null: the model's)
  int batch_size = 16;
  int max_rank_candidates = 32;
  bool generate = true;  // exact match needs generation; skip it for a cheaper evaluation
};

// `encoded` are the examples encoded with options.encoding (same order). `tokenizer` may
// be null for token-id data (generated outputs are then compared and shown as ids).
// With `ranks` of a distributed run, each rank evaluates consecutive examples of its own
// and every rank returns the result of all of them (call it on every rank).
EvalResult evaluate(const Model& model, const Tokenizer* tokenizer, host::MethodInstance& method,
                    const std::vector<Example>& examples, const std::vector<Encoded>& encoded,
                    const EvalOptions& options, Ranks* ranks = nullptr);

// Greedy continuation of one encoded example's prompt (tokens before its output) with
// the method's injection; returns the generated ids, up to (not including) the first of
// `stop_ids` (see ph::stop_ids).
std::vector<int32_t> generate_output(const Model& model, host::MethodInstance& method,
                                     const Encoded& example, int max_new_tokens,
                                     const std::vector<int32_t>& stop_ids);

}  // namespace ph::trainer
