// Reads the fields of a Hugging Face config.json, each error naming the file and the field.
// Every family's config parser (models/families/) reads through it.
#pragma once

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "models/common/error.h"
#include "models/config/model_config.h"

namespace ph {

using json = nlohmann::json;

// Reads the fields of one config.json, each error naming the file and the field.
class ConfigReader {
 public:
  ConfigReader(std::string path, const json& root) : path_(std::move(path)), root_(root) {}

  bool has(const char* field) const {
    const auto it = root_.find(field);
    return it != root_.end() && !it->is_null();
  }

  int required_int(const char* field) const {
    if (!has(field)) throw Error(path_ + ": missing field '" + field + "'");
    return to_int(field, root_.at(field));
  }
  int optional_int(const char* field, int fallback) const {
    return has(field) ? to_int(field, root_.at(field)) : fallback;
  }
  // A size: an integer in [1, limit].
  int required_size(const char* field, int limit) const {
    return bounded(field, required_int(field), limit);
  }
  int optional_size(const char* field, int fallback, int limit) const {
    return bounded(field, optional_int(field, fallback), limit);
  }

  float optional_float(const char* field, float fallback) const {
    if (!has(field)) return fallback;
    const json& value = root_.at(field);
    if (!value.is_number()) throw wrong_type(field, "a number", value);
    const double d = value.get<double>();
    if (!(d > 0.0) || !std::isfinite(static_cast<float>(d))) {
      throw Error(path_ + ": field '" + field + "' must be a positive number, found " +
                  value.dump());
    }
    return static_cast<float>(d);
  }

  bool optional_bool(const char* field, bool fallback) const {
    if (!has(field)) return fallback;
    const json& value = root_.at(field);
    if (!value.is_boolean()) throw wrong_type(field, "true or false", value);
    return value.get<bool>();
  }

  std::string optional_string(const char* field, const std::string& fallback) const {
    if (!has(field)) return fallback;
    const json& value = root_.at(field);
    if (!value.is_string()) throw wrong_type(field, "a string", value);
    return value.get<std::string>();
  }

  // A token id: absent or null gives -1; a list (several end tokens) gives its first.
  int token_id(const char* field) const {
    if (!has(field)) return -1;
    const json& value = root_.at(field);
    if (value.is_array()) {
      if (value.empty()) return -1;
      return to_int(field, value.front());
    }
    return to_int(field, value);
  }

  // The first class named by `architectures` ("" when absent).
  std::string first_architecture() const {
    if (!has("architectures")) return "";
    const json& value = root_.at("architectures");
    if (!value.is_array() || value.empty() || !value.front().is_string())
      throw wrong_type("architectures", "a list of class names", value);
    return value.front().get<std::string>();
  }

  // A classification model's class names in id order: id2label's values (keys "0" ..
  // "n-1"), which must agree with num_labels when both are given; transformers' LABEL_<i>
  // names when only num_labels (default 2) is.
  std::vector<std::string> class_labels() const {
    const int count = optional_size("num_labels", 2, 1 << 16);
    if (!has("id2label")) {
      std::vector<std::string> names;
      for (int i = 0; i < count; ++i) names.push_back("LABEL_" + std::to_string(i));
      return names;
    }
    const json& map = root_.at("id2label");
    if (!map.is_object() || map.empty()) throw wrong_type("id2label", "an object of class names", map);
    if (map.size() > (1u << 16)) throw Error(path_ + ": field 'id2label' has too many classes");
    std::vector<std::string> names(map.size());
    std::vector<bool> seen(map.size(), false);
    for (const auto& [key, name] : map.items()) {
      size_t id = names.size();
      try {
        size_t used = 0;
        id = std::stoul(key, &used);
        if (used != key.size()) id = names.size();
      } catch (const std::exception&) {
      }
      if (id >= names.size() || seen[id])
        throw Error(path_ + ": field 'id2label' has key '" + key + "'; keys must be the ids 0 .. " +
                    std::to_string(names.size() - 1) + ", each once");
      if (!name.is_string()) throw wrong_type("id2label", "an object of class names", map);
      names[id] = name.get<std::string>();
      seen[id] = true;
    }
    if (has("num_labels") && required_int("num_labels") != (int)names.size())
      throw Error(path_ + ": field 'num_labels' is " + std::to_string(required_int("num_labels")) +
                  " but 'id2label' names " + std::to_string(names.size()) + " classes");
    return names;
  }

  const std::string& path() const { return path_; }

  // The field is in the file, possibly as null (which `has` treats as absent).
  bool present(const char* field) const { return root_.find(field) != root_.end(); }

 private:
  int to_int(const char* field, const json& value) const {
    if (!value.is_number_integer()) throw wrong_type(field, "an integer", value);
    const long long v =
        value.is_number_unsigned()
            ? static_cast<long long>(std::min<uint64_t>(value.get<uint64_t>(), uint64_t{LLONG_MAX}))
            : value.get<long long>();
    if (v < INT_MIN || v > INT_MAX) {
      throw Error(path_ + ": field '" + field + "' is out of range: " + value.dump());
    }
    return static_cast<int>(v);
  }

  int bounded(const char* field, int value, int limit) const {
    if (value <= 0) {
      throw Error(path_ + ": field '" + field + "' must be positive, found " +
                  std::to_string(value));
    }
    if (value > limit) {
      throw Error(path_ + ": field '" + field + "' is " + std::to_string(value) +
                  "; PromptHost accepts at most " + std::to_string(limit));
    }
    return value;
  }

  Error wrong_type(const char* field, const char* expected, const json& value) const {
    return Error(path_ + ": field '" + field + "' must be " + expected + ", found " +
                 value.type_name() + " " + value.dump());
  }

  std::string path_;
  const json& root_;
};

// head_dim when the config gives it, else hidden / heads (which must then divide).
inline int head_dim_of(const ConfigReader& r, int hidden, const char* hidden_field, int heads,
                const char* heads_field) {
  if (r.has("head_dim")) return r.required_size("head_dim", kMaxWidth);
  if (hidden % heads != 0) {
    throw Error(r.path() + ": field '" + hidden_field + "' (" + std::to_string(hidden) +
                ") is not divisible by '" + heads_field + "' (" + std::to_string(heads) + ")");
  }
  return hidden / heads;
}

}  // namespace ph
