// Which task type (PEFT's CAUSAL_LM, SEQ_2_SEQ_LM, SEQ_CLS) a run or an adapter uses: the
// model folder's (config.json `architectures`), or the one --task-type asks for when the
// model can do it; and where a method's virtual tokens go for that task type.
#pragma once

#include <string>

#include "models/config/model_config.h"
#include "prompthost_sdk/plugin_abi.h"

namespace ph::trainer {

// `requested` (a PEFT name, or "" for the model's own task type) checked against what the
// model at `model_path` can do. Throws ph::Error with the reason otherwise:
//   CAUSAL_LM    needs a decoder with a language-model head (not an encoder, not an
//                encoder-decoder, not a ...ForSequenceClassification folder);
//   SEQ_2_SEQ_LM needs an encoder-decoder (T5);
//   SEQ_CLS      needs a classification head and its classes (a ...ForSequenceClassification
//                folder with id2label): PromptHost does not invent a randomly initialised
//                head for a model that has none.
TaskType resolve_task_type(const ModelConfig& config, const std::string& requested,
                           const std::string& model_path);

// Refuses a method/task-type pair that cannot work, with the reason (a p_tuning template
// places virtual tokens in one causal sequence: it has no meaning for an encoder-decoder's
// or a classifier's input). `method` names the plugin in the message.
void check_method_for_task(const ph_injection_spec& spec, TaskType task, const std::string& method);

// PEFT's num_transformer_submodules: 2 for SEQ_2_SEQ_LM (encoder and decoder), else 1.
int transformer_submodules(TaskType task);

// The virtual tokens of one example on each side, as PEFT feeds them. A prompt-like
// method's table has n rows per submodule (spec.n_virtual = n · submodules): the encoder
// (or the only stack) gets rows 0..n-1; for SEQ_2_SEQ_LM only a per-task method
// (multitask prompt tuning) also puts rows n..2n-1 before the decoder's tokens, the others
// leave them unused (PEFT saves them all the same).
struct VirtualLayout {
  int encoder = 0;  // slots 0..encoder-1, first in the (encoder) input
  int decoder = 0;  // slots encoder..encoder+decoder-1, first in the decoder input
};
VirtualLayout virtual_layout(const ph_injection_spec& spec, TaskType task);

}  // namespace ph::trainer
