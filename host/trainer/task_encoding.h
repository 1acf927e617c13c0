// Examples as the engine's sequences for a task type, fed as PEFT feeds each injection
// (tests/fixtures/hf/README.md, "How PEFT feeds each injection"):
//   CAUSAL_LM     the method's template (virtual tokens first by default), BOS, input,
//                 output and EOS, labels on the scored part (encode_example);
//   SEQ_2_SEQ_LM  encoder: virtual slots 0..n-1, the input, EOS (T5's </s>); decoder: a
//                 per-task method's slots n..2n-1 (unscored), the decoder start token and
//                 the output shifted right; labels: the output and EOS (T5's unshifted
//                 convention);
//   SEQ_CLS       virtual slots 0..n-1 before the special-token template around the text
//                 ([CLS] ... [SEP], <s> ... </s>), the class id from the label's name.
// Token-id data ({"input_ids"}) is used verbatim: nothing is added around it.
#pragma once

#include <string>
#include <vector>

#include "host/trainer/dataset.h"
#include "host/trainer/task_type.h"
#include "models/engine/model.h"

namespace ph::trainer {

struct TaskEncoding {
  TaskType task = TaskType::kCausalLm;
  std::vector<TemplatePart> parts;                // CAUSAL_LM: where the method puts virtual tokens
  EncodeOptions encode;                           // max_length (real tokens), BOS, EOS
  VirtualLayout virtuals;                         // SEQ_2_SEQ_LM / SEQ_CLS: slots per side
  int32_t decoder_start_id = -1;                  // SEQ_2_SEQ_LM
  std::vector<int32_t> text_prefix, text_suffix;  // SEQ_CLS / encoder: special tokens
  std::vector<std::string> labels;                // SEQ_CLS: class names, id order
};

// How examples are encoded for `task` on `model` with a method's injection spec and
// template parts (see the file comment). `tokenizer` may be null (token-id data only).
TaskEncoding task_encoding(const Model& model, TaskType task, const ph_injection_spec& spec,
                           const std::vector<TemplatePart>& parts, const Tokenizer* tokenizer,
                           int max_length);

// One example. Throws ph::Error "FILE:LINE: problem" for data that does not fit the task
// type (no output for SEQ_2_SEQ_LM, no label or a label not among the classes for SEQ_CLS,
// a label for a generation task, text without a tokenizer, token ids longer than fit).
Encoded encode_for_task(const Example& example, const Tokenizer* tokenizer,
                        const TaskEncoding& encoding, const std::string& file);

// The class id of `name` among `labels`; throws "FILE:LINE: label "X" is not one of the
// model's classes (A, B, C)".
int32_t class_id(const std::vector<std::string>& labels, const std::string& name,
                 const std::string& where);

}  // namespace ph::trainer
