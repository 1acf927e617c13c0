// The PromptHost plugin SDK for C++: include this one header.
//   prompthost/plugin_abi.h      the ABI (C)
//   prompthost/sdk/tensor.hpp    xtensor views of DLTensors, owned tensors
//   prompthost/sdk/errors.hpp    exceptions that become statuses
//   prompthost/sdk/options.hpp   option declarations
//   prompthost/sdk/method.hpp    the Method base class and PH_EXPORT_METHOD
#pragma once

#include "prompthost/plugin_abi.h"
#include "prompthost/sdk/errors.hpp"
#include "prompthost/sdk/method.hpp"
#include "prompthost/sdk/options.hpp"
#include "prompthost/sdk/tensor.hpp"
