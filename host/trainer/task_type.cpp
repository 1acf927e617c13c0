#include "host/trainer/task_type.h"

#include "models/common/error.h"

namespace ph::trainer {

namespace {

std::string describe(const ModelConfig& c) {
  return std::string(arch_name(c.arch)) + " model (a " +
         (c.stacks == Stacks::kEncoder          ? "bidirectional encoder"
          : c.stacks == Stacks::kEncoderDecoder ? "encoder-decoder"
                                                : "decoder") +
         ", used as " + task_type_name(c.task) + " by its config.json `architectures`)";
}

// Why `config` cannot be used as `task`, or "" when it can.
std::string refusal(const ModelConfig& c, TaskType task) {
  switch (task) {
    case TaskType::kCausalLm:
      if (c.stacks == Stacks::kEncoder)
        return "an encoder sees every token in both directions and has no language-model head";
      if (c.stacks == Stacks::kEncoderDecoder)
        return "an encoder-decoder generates through its decoder: use SEQ_2_SEQ_LM";
      if (c.task == TaskType::kSeqCls)
        return "a ...ForSequenceClassification folder holds a classification head, no "
               "language-model head";
      return "";
    case TaskType::kSeq2SeqLm:
      if (c.stacks != Stacks::kEncoderDecoder)
        return "SEQ_2_SEQ_LM needs an encoder-decoder (T5); this model has one stack";
      return "";
    case TaskType::kSeqCls:
      if (c.task != TaskType::kSeqCls || c.labels.empty())
        return "SEQ_CLS needs a classification head and its classes (a "
               "...ForSequenceClassification folder with id2label); PromptHost does not "
               "create a randomly initialised head";
      return "";
  }
  return "unknown task type";
}

}  // namespace

TaskType resolve_task_type(const ModelConfig& config, const std::string& requested,
                           const std::string& model_path) {
  const TaskType task = requested.empty() ? config.task : parse_task_type(requested);
  const std::string why = refusal(config, task);
  if (!why.empty())
    throw Error(model_path + ": cannot be used as " + task_type_name(task) + ": " + why +
                "; it is a " + describe(config));
  return task;
}

void check_method_for_task(const ph_injection_spec& spec, TaskType task,
                           const std::string& method) {
  if (task != TaskType::kCausalLm && spec.template_text && spec.template_text[0])
    throw Error("plugin " + method + ": a template places virtual tokens in one causal sequence; " +
                task_type_name(task) + " feeds them as PEFT does (first in the " +
                (task == TaskType::kSeq2SeqLm ? "encoder's input" : "classified text") +
                "): drop the template option");
  if (task == TaskType::kSeq2SeqLm && spec.n_virtual % 2 != 0)
    throw Error("plugin " + method +
                ": for SEQ_2_SEQ_LM a prompt table has 2n rows (encoder and "
                "decoder, PEFT's num_transformer_submodules 2), the plugin gives " +
                std::to_string(spec.n_virtual));
}

int transformer_submodules(TaskType task) {
  return task == TaskType::kSeq2SeqLm ? 2 : 1;
}

VirtualLayout virtual_layout(const ph_injection_spec& spec, TaskType task) {
  VirtualLayout v;
  if (task != TaskType::kSeq2SeqLm) {
    v.encoder = spec.n_virtual;
    return v;
  }
  v.encoder = spec.n_virtual / 2;
  if (spec.per_example) v.decoder = spec.n_virtual / 2;
  return v;
}

}  // namespace ph::trainer
