// Range checks of command-line options (and of the settings a run saved), made before
// any work starts. A value out of range is an OptionError naming the option, e.g.
// "--batch-size must be >= 1, got 0": the commands report it as a usage error (exit 2).
#pragma once

#include <cstdint>
#include <limits>
#include <string>

#include "models/common/error.h"

namespace ph::trainer {

struct OptionError : Error {
  using Error::Error;
};

// The most engine threads an option may ask for.
constexpr int kMaxThreads = 1024;

// value in [min, max].
void check_int(const char* option, long long value, long long min,
               long long max = std::numeric_limits<int>::max());
// A finite value in [min, max] (NaN and infinities are refused).
void check_number(const char* option, double value, double min,
                  double max = std::numeric_limits<double>::max());
// value is one of `choices` ("a, b or c").
void check_choice(const char* option, const std::string& value,
                  std::initializer_list<const char*> choices);
// A seed written as a non-negative decimal integer that fits in 64 bits ("-1" is refused,
// not wrapped around).
uint64_t parse_seed(const char* option, const std::string& text);

}  // namespace ph::trainer
