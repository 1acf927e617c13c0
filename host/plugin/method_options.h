// A method's options: the values a user gives (adapter_config.json fields, --set
// key=value) checked against the plugin's declarations, defaults filled in.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "prompthost_sdk/plugin_abi.h"

namespace ph::host {

// Starts from every option's default, overlays `config` (keys that are not options are
// ignored only if listed in `ignored_keys`, e.g. PEFT's base fields), then `--set`
// assignments ("key=value", the value parsed by the option's type). Throws ph::Error
// naming the option for an unknown key, a wrong type, a value out of range or not among
// the choices, e.g. `option num_virtual_tokens: expected an integer in [1, 4096], got
// "abc"`. Values are normalised: INT as integers, FLOAT as floating-point numbers.
nlohmann::json resolve_options(const ph_method_descriptor& descriptor, const nlohmann::json& config,
                               const std::vector<std::string>& set_assignments,
                               const std::vector<std::string>& ignored_keys = {});

// One line per option: "name (type, default D): help [choices]" for --help.
std::string describe_options(const ph_method_descriptor& descriptor);

// Checks the declarations themselves: every option named once, a known type, choices
// for CHOICE, min <= max, struct_size at least 1.0's, and a default_value that is valid
// JSON satisfying its own declaration. Throws ph::Error naming the plugin and the option.
// PluginLibrary::load runs it, so a loaded plugin's declarations are always valid.
void check_option_declarations(const ph_method_descriptor& descriptor);

// Option i of the descriptor. The array's stride is the plugin's sizeof(ph_option) (its
// first entry's struct_size), which grows in later minors: never index `options` directly.
const ph_option& option_at(const ph_method_descriptor& descriptor, uint32_t i);

// A choice option's NULL-terminated choices as strings (empty when it has none).
std::vector<std::string> choices_of(const ph_option& option);

}  // namespace ph::host
