#include "host/plugin/task_types.h"

#include <string>

#include "models/common/error.h"

namespace ph::host {

namespace {

constexpr TaskType kKnown[] = {TaskType::kCausalLm, TaskType::kSeq2SeqLm, TaskType::kSeqCls};

bool declares_any(const ph_method_descriptor& d) {
  return PH_HAS(&d, ph_method_descriptor, n_task_types) && d.task_types && d.n_task_types > 0;
}

}  // namespace

ph_task_type to_abi_task_type(TaskType task) {
  switch (task) {
    case TaskType::kCausalLm:
      return PH_TASK_CAUSAL_LM;
    case TaskType::kSeq2SeqLm:
      return PH_TASK_SEQ_2_SEQ_LM;
    case TaskType::kSeqCls:
      return PH_TASK_SEQ_CLS;
  }
  throw Error("to_abi_task_type: unknown task type");
}

std::vector<TaskType> declared_task_types(const ph_method_descriptor& d) {
  std::vector<TaskType> tasks;
  if (!declares_any(d)) return tasks;
  for (TaskType task : kKnown)
    for (uint32_t i = 0; i < d.n_task_types; ++i)
      if (d.task_types[i] == to_abi_task_type(task)) {
        tasks.push_back(task);
        break;
      }
  return tasks;
}

bool supports_task_type(const ph_method_descriptor& d, TaskType task) {
  if (!declares_any(d)) return true;
  for (uint32_t i = 0; i < d.n_task_types; ++i)
    if (d.task_types[i] == to_abi_task_type(task)) return true;
  return false;
}

void check_task_type_supported(const ph_method_descriptor& d, TaskType task) {
  if (supports_task_type(d, task)) return;
  std::string listed;
  for (TaskType t : declared_task_types(d))
    listed += (listed.empty() ? "" : ", ") + std::string(task_type_name(t));
  throw Error(std::string("plugin ") + d.name + " (" + d.peft_type +
              ") does not support task type " + task_type_name(task) + ": it supports " +
              (listed.empty() ? "no task type this host knows" : listed));
}

void check_task_type_declaration(const ph_method_descriptor& d) {
  if (!PH_HAS(&d, ph_method_descriptor, n_task_types)) return;
  if (d.n_task_types > kMaxTaskTypes)
    throw Error(std::string("its descriptor (") + d.name + ") declares " +
                std::to_string(d.n_task_types) + " task types, more than " +
                std::to_string(kMaxTaskTypes));
  if (d.n_task_types > 0 && !d.task_types)
    throw Error(std::string("its descriptor (") + d.name + ") declares " +
                std::to_string(d.n_task_types) + " task types but task_types is NULL");
}

}  // namespace ph::host
