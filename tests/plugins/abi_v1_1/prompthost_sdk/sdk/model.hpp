// The frozen model as a method sees it (ph_model_info, since 1.1 with its task type):
// a complete copy of the host's table, PEFT's task type names, and the
// adapter_config.json fields PEFT derives from the model.
#pragma once

#include <cstring>
#include <string>

#include <nlohmann/json.hpp>

#include "prompthost_sdk/plugin_abi.h"

namespace ph::sdk {

// PEFT's name of a task type ("CAUSAL_LM", "SEQ_2_SEQ_LM", "SEQ_CLS"); "" for a code this
// SDK does not know.
inline const char* task_type_name(ph_task_type task) {
  switch (task) {
    case PH_TASK_CAUSAL_LM:
      return "CAUSAL_LM";
    case PH_TASK_SEQ_2_SEQ_LM:
      return "SEQ_2_SEQ_LM";
    case PH_TASK_SEQ_CLS:
      return "SEQ_CLS";
  }
  return "";
}

// The host's table copied into this SDK's ph_model_info: the fields the host's table
// holds (its struct_size says which), and for the ones it lacks (an older host) what
// they mean for a 1.0 model: a causal decoder, one submodule, no labels.
inline ph_model_info complete_model_info(const ph_model_info& given) {
  ph_model_info m{};
  const size_t size = given.struct_size < sizeof m ? given.struct_size : sizeof m;
  std::memcpy(&m, &given, size);
  m.struct_size = sizeof m;
  if (!PH_HAS(&given, ph_model_info, num_labels)) {
    m.reserved_1_1 = 0;
    m.task_type = PH_TASK_CAUSAL_LM;
    m.num_transformer_submodules = 1;
    m.n_encoder_layers = 0;
    m.n_decoder_layers = m.n_layers;
    m.num_labels = 0;
  }
  return m;
}

// Whether the descriptor lists `task` among its task types, or lists none (undeclared).
inline bool supports_task_type(const ph_method_descriptor& d, ph_task_type task) {
  if (!PH_HAS(&d, ph_method_descriptor, n_task_types) || !d.task_types || d.n_task_types == 0)
    return true;
  for (uint32_t i = 0; i < d.n_task_types; ++i)
    if (d.task_types[i] == task) return true;
  return false;
}

// The adapter_config.json fields PEFT's prompt learning computes from the model
// (peft_model.py, _prepare_prompt_learning_config) for prompt tuning, P-tuning and
// multitask prompt tuning: the virtual-token width, the model's layers and heads, and
// one or two submodules by task type. Prefix tuning overrides token_dim and heads with
// the key/value geometry.
inline nlohmann::json peft_model_fields(const ph_model_info& m) {
  return {{"task_type", task_type_name(m.task_type)},
          {"num_transformer_submodules", m.num_transformer_submodules},
          {"token_dim", m.dim},
          {"num_layers", m.n_layers},
          {"num_attention_heads", m.n_heads}};
}

}  // namespace ph::sdk
