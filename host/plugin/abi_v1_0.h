// The sizes of the ABI 1.0 tables: the smallest `struct_size` a 1.x producer may hand
// over. A later minor only appends fields, so a larger size is fine and a smaller one
// means a broken (or pre-1.0) producer. These are the frozen 1.0 layouts, not sizeof of
// whatever this host was compiled with, so a newer host still accepts 1.0 plugins.
#pragma once

#include <cstddef>
#include <cstdint>

#include "prompthost_sdk/plugin_abi.h"

namespace ph::host::abi_1_0 {

#define PH_END_OF(T, f) (offsetof(T, f) + sizeof(((T*)0)->f))
constexpr uint32_t kEntrySize = PH_END_OF(ph_plugin_entry, create);
constexpr uint32_t kDescriptorSize = PH_END_OF(ph_method_descriptor, n_options);
constexpr uint32_t kOptionSize = PH_END_OF(ph_option, nullable);
constexpr uint32_t kMethodSize = PH_END_OF(ph_method, get_extension);
constexpr uint32_t kInjectionSpecSize = PH_END_OF(ph_injection_spec, template_text);
constexpr uint32_t kParameterSize = PH_END_OF(ph_parameter, grad);
#undef PH_END_OF

}  // namespace ph::host::abi_1_0
