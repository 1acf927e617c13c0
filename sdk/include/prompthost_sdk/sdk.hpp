// The PromptHost plugin SDK for C++: include this one header.
//   prompthost_sdk/plugin_abi.h      the ABI (C)
//   prompthost_sdk/sdk/tensor.hpp    xtensor views of DLTensors, owned tensors
//   prompthost_sdk/sdk/errors.hpp    exceptions that become statuses
//   prompthost_sdk/sdk/model.hpp     the model's facts and task type, PEFT's fields
//   prompthost_sdk/sdk/options.hpp   option declarations
//   prompthost_sdk/sdk/method.hpp    the Method base class and PH_EXPORT_METHOD
//   prompthost_sdk/sdk/kv_prefix.hpp PEFT's flat key/value prefix (prefix methods)
#pragma once

#include "prompthost_sdk/plugin_abi.h"
#include "prompthost_sdk/sdk/errors.hpp"
#include "prompthost_sdk/sdk/kv_prefix.hpp"
#include "prompthost_sdk/sdk/method.hpp"
#include "prompthost_sdk/sdk/model.hpp"
#include "prompthost_sdk/sdk/options.hpp"
#include "prompthost_sdk/sdk/tensor.hpp"
