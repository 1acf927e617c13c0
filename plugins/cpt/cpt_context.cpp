#include "cpt_context.h"

#include <fstream>

#include <nlohmann/json.hpp>
#include <prompthost_sdk/sdk.hpp>

namespace cpt {

Context context_from_examples(const std::string& path, int count, const Tokenize& tokenize,
                              const std::string& option) {
  std::ifstream in(path);
  if (!in) throw ph::sdk::ConfigError(option, "cannot read " + path);
  Context c;
  std::string line;
  int line_no = 0, k = 0;
  while (k < count && std::getline(in, line)) {
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const auto j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    const std::string where = path + ":" + std::to_string(line_no);
    if (!j.is_object() || !j.contains("input") || !j["input"].is_string() ||
        !j.contains("output") || !j["output"].is_string())
      throw ph::sdk::ConfigError(option, where +
                                             ": not a JSON object with string fields "
                                             "\"input\" and \"output\"");
    for (const auto& [field, type] : {std::pair<const char*, int64_t>{"input", 4 * k + 2},
                                      std::pair<const char*, int64_t>{"output", 4 * k + 4}}) {
      for (int64_t id : tokenize(j[field].get<std::string>())) {
        c.token_ids.push_back(id);
        c.types.push_back(type);
      }
    }
    ++k;
  }
  if (k < count)
    throw ph::sdk::ConfigError(option, path + " has " + std::to_string(k) +
                                           " examples, fewer than the " + std::to_string(count) +
                                           " asked for");
  return c;
}

}  // namespace cpt
