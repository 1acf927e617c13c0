// The one exception type of the engine. Every message names what failed and where
// (a file, a tensor, a config field), because the user must be able to act on it.
#pragma once

#include <stdexcept>
#include <string>

namespace ph {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

}  // namespace ph
