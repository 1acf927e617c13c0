#include "host/trainer/json_fields.h"

namespace ph::trainer {

void JsonPlace::fail(const std::string& problem) const {
  if (field.empty()) throw Error(file + ": " + problem);
  throw Error(file + ": \"" + field + "\" " + problem);
}

const nlohmann::json& json_member(const nlohmann::json& object, const std::string& key,
                                  const JsonPlace& place) {
  if (!object.is_object()) place.fail("must be an object, got " + json_detail::type_of(object));
  const auto it = object.find(key);
  if (it == object.end()) {
    const JsonPlace missing = place / key;
    throw Error(place.file + ": missing field \"" + missing.field + "\"");
  }
  return *it;
}

namespace json_detail {

std::string type_of(const nlohmann::json& value) {
  if (value.is_null()) return "null";
  if (value.is_boolean()) return value.dump();
  if (value.is_number()) return "the number " + value.dump();
  if (value.is_string()) return "a string";
  if (value.is_array()) return "an array";
  return "an object";
}

}  // namespace json_detail

}  // namespace ph::trainer
