#include "template.h"

#include <prompthost_sdk/sdk/errors.hpp>

namespace p_tuning {

void check_template(const std::string& text, int n_virtual) {
  const auto fail = [&](const std::string& problem) {
    throw ph::sdk::ConfigError("template", "\"" + text + "\": " + problem);
  };
  long long placed = 0;
  bool has_input = false;
  for (size_t i = 0; i < text.size();) {
    if (text.compare(i, 3, "[P:") == 0) {
      const size_t close = text.find(']', i);
      if (close == std::string::npos) fail("unclosed [P:k] at character " + std::to_string(i));
      const std::string count = text.substr(i + 3, close - i - 3);
      bool digits = !count.empty() && count.size() <= 6;
      for (char c : count) digits = digits && c >= '0' && c <= '9';
      if (!digits || std::stoi(count) == 0) fail("[P:" + count + "] needs a positive count");
      placed += std::stoi(count);
      i = close + 1;
    } else if (text.compare(i, 7, "{input}") == 0) {
      has_input = true;
      i += 7;
    } else if (text.compare(i, 6, "{text}") == 0) {
      has_input = true;
      i += 6;
    } else {
      ++i;
    }
  }
  if (!has_input) fail("has no {input}");
  if (placed != n_virtual)
    fail("places " + std::to_string(placed) + " virtual tokens, num_virtual_tokens is " +
         std::to_string(n_virtual) + " (the [P:k] counts must sum to it)");
}

}  // namespace p_tuning
