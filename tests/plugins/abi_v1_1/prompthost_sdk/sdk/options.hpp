// Builders for a method's option declarations (ph_option), usable in static arrays:
//   static const ph_option kOptions[] = {
//       ph::sdk::int_option("num_virtual_tokens", "20", 1, 4096, "virtual tokens"),
//       ph::sdk::choice_option("init", "\"RANDOM\"", kInits, "initialisation")};
#pragma once

#include <cmath>

#include "prompthost_sdk/plugin_abi.h"

namespace ph::sdk {

inline ph_option make_option(const char* name, ph_option_type type, const char* default_json,
                             const char* help, const char* const* choices = nullptr,
                             double min_value = -HUGE_VAL, double max_value = HUGE_VAL,
                             bool nullable = false) {
  ph_option o{};
  o.struct_size = sizeof(ph_option);
  o.name = name;
  o.type = type;
  o.default_value = default_json;
  o.help = help;
  o.choices = choices;
  o.min_value = min_value;
  o.max_value = max_value;
  o.nullable = nullable ? 1 : 0;
  return o;
}

inline ph_option int_option(const char* name, const char* default_json, double min_value,
                            double max_value, const char* help, bool nullable = false) {
  return make_option(name, PH_OPTION_INT, default_json, help, nullptr, min_value, max_value,
                     nullable);
}
inline ph_option float_option(const char* name, const char* default_json, double min_value,
                              double max_value, const char* help) {
  return make_option(name, PH_OPTION_FLOAT, default_json, help, nullptr, min_value, max_value);
}
inline ph_option bool_option(const char* name, const char* default_json, const char* help) {
  return make_option(name, PH_OPTION_BOOL, default_json, help);
}
inline ph_option string_option(const char* name, const char* default_json, const char* help,
                               bool nullable = true) {
  return make_option(name, PH_OPTION_STRING, default_json, help, nullptr, -HUGE_VAL, HUGE_VAL,
                     nullable);
}
inline ph_option choice_option(const char* name, const char* default_json,
                               const char* const* choices, const char* help) {
  return make_option(name, PH_OPTION_CHOICE, default_json, help, choices);
}

}  // namespace ph::sdk
