// ph.host.tensor-files/1: tensors of saved adapters and .safetensors files, read for
// plugins (a multitask target initialised from its source adapter, say), so that no
// plugin parses files itself. Stateless: every call opens (maps) the file anew.
#pragma once

#include <string>

#include "prompthost_sdk/plugin_abi.h"

namespace ph::host {

const ph_host_tensor_files* tensor_files_service();

// The safetensors file a tensor-files `path` names: the path itself, or
// <path>/adapter_model.safetensors for a folder.
std::string tensor_file_of(const std::string& path);

}  // namespace ph::host
