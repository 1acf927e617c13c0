#include "models/common/json_file.h"

#include <fstream>
#include <sstream>

#include "models/common/error.h"

namespace ph {

using nlohmann::json;

void check_json_depth(int callback_depth, json::parse_event_t event, const std::string& source) {
  const bool starts =
      event == json::parse_event_t::object_start || event == json::parse_event_t::array_start;
  // nlohmann reports a start at the depth of the value's parent.
  if (starts && callback_depth + 1 > kMaxJsonDepth) {
    throw Error(source + ": JSON nested deeper than " + std::to_string(kMaxJsonDepth) +
                " levels (refused: no real file nests this deep)");
  }
}

json parse_json(std::string_view text, const std::string& source) {
  const auto bound_depth = [&](int depth, json::parse_event_t event, json&) {
    check_json_depth(depth, event, source);
    return true;
  };
  try {
    return json::parse(text.begin(), text.end(), bound_depth);
  } catch (const json::exception& e) {
    throw Error(source + ": not valid JSON: " + e.what());
  }
}

json read_json_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot open");
  std::stringstream text;
  text << in.rdbuf();
  if (in.bad()) throw Error(path + ": cannot read");
  return parse_json(text.str(), path);
}

}  // namespace ph
