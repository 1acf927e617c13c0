#include "host/trainer/option_checks.h"

#include <cmath>
#include <sstream>

namespace ph::trainer {

namespace {

std::string range_text(long long min, long long max) {
  if (max == std::numeric_limits<int>::max()) return ">= " + std::to_string(min);
  return "in [" + std::to_string(min) + ", " + std::to_string(max) + "]";
}

std::string number_text(double v) {
  std::ostringstream s;
  s << v;
  return s.str();
}

}  // namespace

void check_int(const char* option, long long value, long long min, long long max) {
  if (value < min || value > max)
    throw OptionError(std::string(option) + " must be " + range_text(min, max) + ", got " +
                      std::to_string(value));
}

void check_number(const char* option, double value, double min, double max) {
  if (std::isfinite(value) && value >= min && value <= max) return;
  const std::string range = max == std::numeric_limits<double>::max()
                                ? ">= " + number_text(min)
                                : "in [" + number_text(min) + ", " + number_text(max) + "]";
  throw OptionError(std::string(option) + " must be a finite number " + range + ", got " +
                    number_text(value));
}

void check_choice(const char* option, const std::string& value,
                  std::initializer_list<const char*> choices) {
  std::string listed;
  size_t i = 0;
  for (const char* c : choices) {
    if (value == c) return;
    listed += (i == 0 ? "" : i + 1 == choices.size() ? " or " : ", ") + std::string(c);
    ++i;
  }
  throw OptionError(std::string(option) + " must be " + listed + ", got \"" + value + "\"");
}

uint64_t parse_seed(const char* option, const std::string& text) {
  const bool digits = !text.empty() && text.find_first_not_of("0123456789") == std::string::npos;
  if (!digits)
    throw OptionError(std::string(option) + " must be a non-negative integer, got \"" + text +
                      "\"");
  const std::string significant = text.substr(std::min(text.find_first_not_of('0'), text.size()));
  // 2^64 - 1 has 20 digits: compare as text, so no conversion can wrap around.
  const std::string max = std::to_string(std::numeric_limits<uint64_t>::max());
  if (significant.size() > max.size() || (significant.size() == max.size() && significant > max))
    throw OptionError(std::string(option) + " must fit in 64 bits, got \"" + text + "\"");
  return significant.empty() ? 0 : std::stoull(significant);
}

}  // namespace ph::trainer
