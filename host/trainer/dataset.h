// Training and evaluation data: JSONL examples, turned into token sequences with
// virtual-token slots and labels by a prompt template.
//
// Each line is one JSON object:
//   {"text": "..."}                     language modelling: every token is scored
//   {"input": "...", "output": "..."}   only the output (and an EOS after it) is scored;
//                                       SEQ_2_SEQ_LM: input -> encoder, output -> decoder
//   {"text" or "input": "...", "label": "NAME"}   SEQ_CLS: the class, by its name
//   {"input_ids": [..]} with "output_ids": [..] or "label": token ids, used verbatim (no
//                                       BOS/EOS or special tokens added; no tokenizer needed)
// with an optional "task" (a name or an index) for multitask methods.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "models/engine/engine.h"
#include "models/tokenizer/tokenizer.h"

namespace ph::trainer {

struct Example {
  std::string input;   // the text of {"text"} data
  std::string output;  // empty for {"text"} data
  bool has_output = false;
  std::string task;  // as written in the file ("" when absent)
  int line = 0;      // 1-based line in its file
  // {"label": NAME} (classification data)
  std::string label;
  bool has_label = false;
  // Token-id data ({"input_ids"}, {"output_ids"}): used as given, no tokenizer involved.
  bool ids = false;
  std::vector<int32_t> input_ids, output_ids;
  // {"context": TEXT}: what a distillation teacher reads before this example (Cartridges).
  std::string context;
  bool has_context = false;
};

// Reads every non-blank line of a JSONL file. Throws ph::Error "FILE:LINE: problem" for
// a line that is not a JSON object, lacks "text" or "input"+"output" (or "label", or the
// token-id forms), or has fields of the wrong type.
std::vector<Example> read_jsonl(const std::string& path);

// Maps task names (or indices written as numbers/numeric strings) to task ids.
class TaskMap {
 public:
  TaskMap() = default;
  explicit TaskMap(std::vector<std::string> names) : names_(std::move(names)) {}
  // The task id of an example's task: a known name, or an index < count. Throws ph::Error
  // naming the file, line and the task otherwise. `learn` adds unknown names (source
  // training builds the map from its data).
  int64_t id(const Example& example, const std::string& file, bool learn);
  const std::vector<std::string>& names() const { return names_; }

  // The task id of each example for a method that keeps a prompt per task (or, with
  // `per_task` false, only where the data names one; -1 elsewhere). Data with no "task"
  // field at all is one task, id 0: a multitask method then trains on it as a single task.
  std::vector<int64_t> ids(const std::vector<Example>& examples, const std::string& file,
                           bool learn, bool per_task);

 private:
  std::vector<std::string> names_;
};

// Where virtual tokens and text go. Parsed from a method's template text, e.g.
// "[P:3] {input} [P:3] {output}" (see ph_injection_spec.template_text); the default
// is all virtual tokens first, then input and output (PEFT's prepended layout).
struct TemplatePart {
  enum Kind { kVirtual, kInput, kOutput, kLiteral } kind;
  int count = 0;        // kVirtual: how many
  std::string literal;  // kLiteral: text, tokenized
};
std::vector<TemplatePart> parse_template(const std::string& text, int n_virtual);
std::vector<TemplatePart> default_template(int n_virtual);

struct Encoded {
  Sequence sequence;  // tokens (with virtual slots) and labels
  int64_t task = -1;
  int truncated = 0;      // tokens cut to fit max_length
  int prompt_length = 0;  // tokens before the output starts (what generation is given)
};

struct EncodeOptions {
  int max_length = 0;   // real tokens (BOS, text, EOS) per example; 0 = the model's context
  int32_t bos_id = -1;  // placed before the first text piece; -1 = none
  int32_t eos_id = -1;  // appended after the output (input/output data); -1 = none
};

// Tokens and labels of one example. BOS goes right before the first text piece
// (virtual tokens the template puts first stay before it, as PEFT prepends them).
// Virtual slots are numbered in template order. When the text is longer than
// max_length, the input is cut from its start (keeping BOS) for input/output data and
// from its end for text data; the count is returned in `truncated`.
Encoded encode_example(const Example& example, const Tokenizer& tokenizer,
                       const std::vector<TemplatePart>& parts, const EncodeOptions& options);

}  // namespace ph::trainer
