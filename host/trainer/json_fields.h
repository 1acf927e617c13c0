// Checked access to the fields of a JSON file the trainer reads back (trainer_state.json,
// prompthost_adapter.json, ...): a missing field, a wrong type or an out-of-range number
// is a ph::Error naming the file and the field, never a bare nlohmann exception.
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include <nlohmann/json.hpp>

#include "models/common/error.h"

namespace ph::trainer {

// Where a value sits: the file and the field's dotted path ("config.lr").
struct JsonPlace {
  std::string file;
  std::string field;
  JsonPlace operator/(const std::string& key) const {
    return {file, field.empty() ? key : field + "." + key};
  }
  [[noreturn]] void fail(const std::string& problem) const;
};

// `object[key]`; throws "FILE: missing field "PATH"" (or, when `object` is no object,
// "FILE: "PATH" must be an object").
const nlohmann::json& json_member(const nlohmann::json& object, const std::string& key,
                                  const JsonPlace& place);

namespace json_detail {
std::string type_of(const nlohmann::json& value);  // "a string", "null", ...
}  // namespace json_detail

// `value` as a T, checked: bool, integers (in T's range), floating point, std::string,
// std::vector<std::string>, std::vector<nlohmann::json> (an array), nlohmann::json.
template <class T>
T json_as(const nlohmann::json& value, const JsonPlace& place) {
  using json = nlohmann::json;
  auto expect = [&](bool ok, const char* what) {
    if (!ok) place.fail("must be " + std::string(what) + ", got " + json_detail::type_of(value));
  };
  if constexpr (std::is_same_v<T, json>) {
    return value;
  } else if constexpr (std::is_same_v<T, bool>) {
    expect(value.is_boolean(), "true or false");
    return value.get<bool>();
  } else if constexpr (std::is_integral_v<T>) {
    expect(value.is_number_integer(), "an integer");
    const bool fits = value.is_number_unsigned()
                          ? value.get<uint64_t>() <= (uint64_t)std::numeric_limits<T>::max()
                          : value.get<int64_t>() >= (int64_t)std::numeric_limits<T>::min() &&
                                (std::is_unsigned_v<T> ||
                                 value.get<int64_t>() <= (int64_t)std::numeric_limits<T>::max());
    if (!fits) place.fail("= " + value.dump() + " is out of range");
    return value.get<T>();
  } else if constexpr (std::is_floating_point_v<T>) {
    expect(value.is_number(), "a number");
    return value.get<T>();
  } else if constexpr (std::is_same_v<T, std::string>) {
    expect(value.is_string(), "a string");
    return value.get<std::string>();
  } else if constexpr (std::is_same_v<T, std::vector<std::string>>) {
    expect(value.is_array(), "an array of strings");
    std::vector<std::string> out;
    for (size_t i = 0; i < value.size(); ++i)
      out.push_back(json_as<std::string>(value[i], place / std::to_string(i)));
    return out;
  } else {
    static_assert(std::is_same_v<T, std::vector<json>>, "json_as: unsupported type");
    expect(value.is_array(), "an array");
    return value.get<std::vector<json>>();
  }
}

// json_as<T>(object[key]), with the place of the field.
template <class T>
T json_field(const nlohmann::json& object, const std::string& key, const JsonPlace& place) {
  return json_as<T>(json_member(object, key, place), place / key);
}

// The field when present, `fallback` when absent (a wrong type is still an error).
template <class T>
T json_field_or(const nlohmann::json& object, const std::string& key, const T& fallback,
                const JsonPlace& place) {
  if (!object.is_object() || !object.contains(key)) return fallback;
  return json_field<T>(object, key, place);
}

}  // namespace ph::trainer
