// Task types across the plugin ABI (since 1.1): the engine's TaskType as the ABI's code,
// and the task types a plugin declares in its descriptor.
#pragma once

#include <vector>

#include "models/config/model_config.h"
#include "prompthost_sdk/plugin_abi.h"

namespace ph::host {

ph_task_type to_abi_task_type(TaskType task);

// The task types the descriptor declares that this host knows (codes of a later minor
// are left out); empty when it declares none (a 1.0 plugin): then every task type is
// offered to it.
std::vector<TaskType> declared_task_types(const ph_method_descriptor& descriptor);
bool supports_task_type(const ph_method_descriptor& descriptor, TaskType task);

// Throws ph::Error unless the method supports `task`, e.g. "plugin prefix_tuning
// (PREFIX_TUNING) does not support task type SEQ_CLS: it supports CAUSAL_LM".
void check_task_type_supported(const ph_method_descriptor& descriptor, TaskType task);

// The declaration itself, checked when the plugin loads: at most kMaxTaskTypes entries,
// an array when there are any. Throws ph::Error naming the problem.
constexpr uint32_t kMaxTaskTypes = 64;
void check_task_type_declaration(const ph_method_descriptor& descriptor);

}  // namespace ph::host
