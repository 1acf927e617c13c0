#include "host/plugin/method_options.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <set>

#include "host/plugin/abi_v1_0.h"
#include "models/common/error.h"

namespace ph::host {

namespace {

using json = nlohmann::json;

std::string plugin_name(const ph_method_descriptor& d) {
  return d.name && *d.name ? d.name : "(unnamed)";
}

// A bound as a user would write it: 4096, not 4096.000000.
std::string number_text(double v) {
  if (std::isfinite(v) && v == std::floor(v) && std::fabs(v) < 1e15) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.0f", v);
    return buf;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  // Shortest text that reads back the same, so 0.1 prints as 0.1.
  for (int precision = 1; precision <= 17; ++precision) {
    char shorter[32];
    std::snprintf(shorter, sizeof shorter, "%.*g", precision, v);
    if (std::strtod(shorter, nullptr) == v) return shorter;
  }
  return buf;
}

std::string range_text(const ph_option& o) {
  const bool low = std::isfinite(o.min_value), high = std::isfinite(o.max_value);
  if (low && high)
    return " in [" + number_text(o.min_value) + ", " + number_text(o.max_value) + "]";
  if (low) return " >= " + number_text(o.min_value);
  if (high) return " <= " + number_text(o.max_value);
  return "";
}

std::string join(const std::vector<std::string>& items, const char* separator, bool quote) {
  std::string s;
  for (size_t i = 0; i < items.size(); ++i)
    s += (i ? separator : "") + (quote ? "\"" + items[i] + "\"" : items[i]);
  return s;
}

// What the option takes, for messages: "an integer in [1, 4096]", "one of "A", "B"".
std::string expected_text(const ph_option& o, bool from_set) {
  std::string s;
  switch (o.type) {
    case PH_OPTION_INT:
      s = "an integer" + range_text(o);
      break;
    case PH_OPTION_FLOAT:
      s = "a number" + range_text(o);
      break;
    case PH_OPTION_BOOL:
      s = from_set ? "true, false, 1 or 0" : "true or false";
      break;
    case PH_OPTION_STRING:
      s = "a string";
      break;
    case PH_OPTION_CHOICE:
      s = "one of " + join(choices_of(o), ", ", true);
      break;
    case PH_OPTION_INT_LIST:
      s = "a list of integers" + (range_text(o).empty() ? "" : ", each" + range_text(o)) +
          (from_set ? " ([1,2,3])" : "");
      break;
    default:
      s = "a value of unknown type " + std::to_string(o.type);
      break;
  }
  return o.nullable ? s + " or null" : s;
}

std::string type_text(const ph_option& o) {
  switch (o.type) {
    case PH_OPTION_INT:
      return "int" + range_text(o);
    case PH_OPTION_FLOAT:
      return "float" + range_text(o);
    case PH_OPTION_BOOL:
      return "bool";
    case PH_OPTION_STRING:
      return "string";
    case PH_OPTION_CHOICE:
      return "choice";
    case PH_OPTION_INT_LIST:
      return "int list" + (range_text(o).empty() ? "" : ", each" + range_text(o));
    default:
      return "unknown type";
  }
}

bool within(const ph_option& o, double v) {
  return v >= o.min_value && v <= o.max_value;
}

// An INT value: an integer that fits int64 and the option's bounds.
bool accept_integer(const ph_option& o, const json& value, json& normalised) {
  if (value.is_number_unsigned()) {
    const uint64_t u = value.get<uint64_t>();
    if (u > (uint64_t)std::numeric_limits<int64_t>::max()) return false;
    normalised = (int64_t)u;
  } else if (value.is_number_integer()) {
    normalised = value.get<int64_t>();
  } else {
    return false;
  }
  return within(o, (double)normalised.get<int64_t>());
}

// `value` checked against the declaration and normalised, or a null optional when it
// does not fit. (A JSON null that fits is returned as json(nullptr) with ok = true.)
bool accept(const ph_option& o, const json& value, json& normalised) {
  if (value.is_null()) {
    normalised = nullptr;
    return o.nullable != 0;
  }
  switch (o.type) {
    case PH_OPTION_INT:
      return accept_integer(o, value, normalised);
    case PH_OPTION_INT_LIST: {  // every element an INT within the bounds
      if (!value.is_array()) return false;
      normalised = json::array();
      for (const json& element : value) {
        json n;
        if (!accept_integer(o, element, n)) return false;
        normalised.push_back(n);
      }
      return true;
    }
    case PH_OPTION_FLOAT:
      if (!value.is_number()) return false;
      normalised = value.get<double>();
      return std::isfinite(normalised.get<double>()) && within(o, normalised.get<double>());
    case PH_OPTION_BOOL:
      normalised = value;
      return value.is_boolean();
    case PH_OPTION_STRING:
      normalised = value;
      return value.is_string();
    case PH_OPTION_CHOICE: {
      if (!value.is_string()) return false;
      const auto choices = choices_of(o);
      normalised = value;
      return std::find(choices.begin(), choices.end(), value.get<std::string>()) != choices.end();
    }
    default:
      return false;
  }
}

// A --set value parsed by the option's type; a value of the wrong form becomes a JSON
// string so that accept() rejects it (for the types that do not take strings).
json parse_set_value(const ph_option& o, const std::string& text, bool& parsed) {
  parsed = true;
  if (o.nullable && text == "null") return nullptr;
  switch (o.type) {
    case PH_OPTION_INT: {
      errno = 0;
      char* end = nullptr;
      const bool digits =
          !text.empty() && text.find_first_not_of("+-0123456789") == std::string::npos;
      const long long v = digits ? std::strtoll(text.c_str(), &end, 10) : 0;
      if (digits && end && *end == '\0' && errno == 0) return (int64_t)v;
      break;
    }
    case PH_OPTION_FLOAT: {
      errno = 0;
      char* end = nullptr;
      const double v = text.empty() ? 0 : std::strtod(text.c_str(), &end);
      if (!text.empty() && end && *end == '\0' && errno == 0 && std::isfinite(v)) return v;
      break;
    }
    case PH_OPTION_BOOL:
      if (text == "true" || text == "1") return true;
      if (text == "false" || text == "0") return false;
      break;
    case PH_OPTION_INT_LIST: {  // JSON text: [1,2,3]
      const json v = json::parse(text, nullptr, /*allow_exceptions=*/false);
      if (v.is_array()) return v;
      break;
    }
    default:
      return text;  // STRING and CHOICE take the text as it is
  }
  parsed = false;
  return text;
}

[[noreturn]] void fail_value(const ph_option& o, const std::string& got, bool from_set) {
  throw Error(std::string("option ") + o.name + ": expected " + expected_text(o, from_set) +
              ", got " + got);
}

const ph_option* find_option(const ph_method_descriptor& d, const std::string& name) {
  for (uint32_t i = 0; i < d.n_options; ++i)
    if (name == option_at(d, i).name) return &option_at(d, i);
  return nullptr;
}

[[noreturn]] void fail_unknown(const ph_method_descriptor& d, const std::string& key,
                               const char* where) {
  std::vector<std::string> names;
  for (uint32_t i = 0; i < d.n_options; ++i) names.push_back(option_at(d, i).name);
  throw Error("unknown option \"" + key + "\"" + where + ": plugin " + plugin_name(d) +
              (names.empty() ? " takes no options" : " takes " + join(names, ", ", false)));
}

}  // namespace

std::vector<std::string> choices_of(const ph_option& o) {
  std::vector<std::string> out;
  if (o.choices)
    for (const char* const* c = o.choices; *c; ++c) out.push_back(*c);
  return out;
}

const ph_option& option_at(const ph_method_descriptor& descriptor, uint32_t i) {
  const uint32_t first = descriptor.options[0].struct_size;
  const size_t stride = first >= abi_1_0::kOptionSize ? first : sizeof(ph_option);
  return *reinterpret_cast<const ph_option*>(reinterpret_cast<const char*>(descriptor.options) +
                                             i * stride);
}

void check_option_declarations(const ph_method_descriptor& d) {
  const std::string plugin = "plugin " + plugin_name(d);
  if (d.n_options == 0) return;
  if (!d.options)
    throw Error(plugin + ": the descriptor declares " + std::to_string(d.n_options) +
                " options but its option table is NULL");
  const uint32_t stride = d.options[0].struct_size;
  std::set<std::string> seen;
  for (uint32_t i = 0; i < d.n_options; ++i) {
    const ph_option& o = option_at(d, i);
    const std::string where = plugin + ": option #" + std::to_string(i);
    if (o.struct_size < abi_1_0::kOptionSize || o.struct_size != stride)
      throw Error(where + ": ph_option.struct_size is " + std::to_string(o.struct_size) +
                  " (ABI 1.0's is " + std::to_string(abi_1_0::kOptionSize) +
                  "; all options of the table must have the same size)");
    if (!o.name || !*o.name) throw Error(where + " has no name");
    const std::string named = plugin + ": option " + o.name;
    if (!seen.insert(o.name).second) throw Error(named + " is declared twice");
    if (o.type < PH_OPTION_INT || o.type > PH_OPTION_INT_LIST)
      throw Error(named + " has an unknown type " + std::to_string(o.type));
    if (o.type == PH_OPTION_CHOICE && choices_of(o).empty())
      throw Error(named + " is a choice without choices");
    if ((o.type == PH_OPTION_INT || o.type == PH_OPTION_FLOAT || o.type == PH_OPTION_INT_LIST) &&
        (std::isnan(o.min_value) || std::isnan(o.max_value) || o.min_value > o.max_value))
      throw Error(named + " has bounds [" + number_text(o.min_value) + ", " +
                  number_text(o.max_value) + "] (min must be <= max)");
    if (!o.default_value)
      throw Error(named + " has no default_value (JSON text; \"null\" for none)");
    json value = json::parse(o.default_value, nullptr, /*allow_exceptions=*/false);
    if (value.is_discarded())
      throw Error(named + ": default_value '" + o.default_value + "' is not valid JSON");
    json normalised;
    if (!accept(o, value, normalised))
      throw Error(named + ": default value " + o.default_value +
                  " does not satisfy its own declaration (expected " + expected_text(o, false) +
                  ")");
  }
}

nlohmann::json resolve_options(const ph_method_descriptor& descriptor, const nlohmann::json& config,
                               const std::vector<std::string>& set_assignments,
                               const std::vector<std::string>& ignored_keys) {
  json result = json::object();
  for (uint32_t i = 0; i < descriptor.n_options; ++i) {
    const ph_option& o = option_at(descriptor, i);
    json normalised;
    if (!o.default_value || !accept(o, json::parse(o.default_value, nullptr, false), normalised))
      throw Error("plugin " + plugin_name(descriptor) + ": option " + o.name +
                  " has an invalid default value");  // load() rejects these first
    result[o.name] = normalised;
  }

  if (!config.is_null() && !config.is_object())
    throw Error("the method's configuration must be a JSON object, got " + config.dump());
  if (config.is_object())
    for (const auto& [key, value] : config.items()) {
      const ph_option* o = find_option(descriptor, key);
      if (!o) {
        if (std::find(ignored_keys.begin(), ignored_keys.end(), key) != ignored_keys.end())
          continue;
        fail_unknown(descriptor, key, "");
      }
      json normalised;
      if (!accept(*o, value, normalised)) fail_value(*o, value.dump(), false);
      result[key] = normalised;
    }

  for (const std::string& assignment : set_assignments) {
    const size_t eq = assignment.find('=');
    if (eq == std::string::npos || eq == 0)
      throw Error("--set \"" + assignment + "\": expected NAME=VALUE");
    const std::string key = assignment.substr(0, eq), text = assignment.substr(eq + 1);
    const ph_option* o = find_option(descriptor, key);
    if (!o) fail_unknown(descriptor, key, " (in --set)");
    bool parsed = false;
    const json value = parse_set_value(*o, text, parsed);
    json normalised;
    if (!parsed || !accept(*o, value, normalised)) fail_value(*o, json(text).dump(), true);
    result[key] = normalised;
  }
  return result;
}

std::string describe_options(const ph_method_descriptor& descriptor) {
  std::string out;
  for (uint32_t i = 0; i < descriptor.n_options; ++i) {
    const ph_option& o = option_at(descriptor, i);
    out += std::string(o.name) + " (" + type_text(o) + (o.nullable ? " or null" : "") +
           ", default " + (o.default_value ? o.default_value : "none") +
           "): " + (o.help ? o.help : "");
    if (o.type == PH_OPTION_CHOICE) out += " [" + join(choices_of(o), ", ", false) + "]";
    out += "\n";
  }
  return out;
}

}  // namespace ph::host
