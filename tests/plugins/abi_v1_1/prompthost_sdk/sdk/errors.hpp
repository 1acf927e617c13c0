// Exceptions a plugin's C++ code may throw; the SDK's export layer catches every
// exception at the ABI boundary and turns it into a host status.
#pragma once

#include <stdexcept>
#include <string>

#include "prompthost_sdk/plugin_abi.h"

namespace ph::sdk {

// An error with an ABI status code.
class Error : public std::runtime_error {
 public:
  Error(ph_code code, const std::string& message) : std::runtime_error(message), code_(code) {}
  ph_code code() const { return code_; }

 private:
  ph_code code_;
};

// An option value the method cannot take: the message names the option.
class ConfigError : public Error {
 public:
  ConfigError(const std::string& option, const std::string& problem)
      : Error(PH_ERR_INVALID_CONFIG, option + ": " + problem) {}
};

// A status the host returned (from a service call), passed on unchanged.
class HostStatus : public std::exception {
 public:
  explicit HostStatus(ph_status* status) : status_(status) {}
  ph_status* release() const { return status_; }
  const char* what() const noexcept override { return "host status"; }

 private:
  ph_status* status_;
};

// Throws HostStatus when a host call failed.
inline void check(ph_status* status) {
  if (status) throw HostStatus(status);
}

}  // namespace ph::sdk
