// Opening an adapter folder for use: the plugin it names (or the one whose PEFT type it
// has, for an adapter PEFT wrote), an instance with its options, its tensors imported,
// and a check that it was made for this model.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "host/plugin/method_instance.h"
#include "host/trainer/adapter_files.h"

namespace ph::trainer {

struct LoadedAdapter {
  AdapterInfo info;
  std::unique_ptr<host::MethodInstance> method;
  TrainedHead head;  // SEQ_CLS: the adapter's head (the base model's where it has none)
};

// Throws ph::Error naming the folder and the problem: not an adapter, no plugin for its
// PEFT type, options the plugin rejects, tensors of the wrong shape, another model,
// another task type than the model's config.task (as the caller set it), other classes.
LoadedAdapter open_adapter(const std::string& dir, const host::ModelHost& model_host,
                           const std::vector<std::string>& plugin_paths);

// The model an adapter names (base_model_name_or_path) if that is a path on this machine.
std::string adapter_base_model(const AdapterInfo& info);

}  // namespace ph::trainer
