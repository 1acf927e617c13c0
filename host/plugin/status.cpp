// Statuses live in the host: a plugin asks the host to make one and whoever receives it
// releases it, so a status (and its message) outlives the library that reported it.
#include "host/plugin/status.h"

#include <atomic>
#include <cstdio>
#include <cstring>
#include <new>

#include "host/plugin/random_service.h"
#include "host/plugin/tensor_files_service.h"
#include "models/common/error.h"

#ifndef PROMPTHOST_VERSION
#error "PROMPTHOST_VERSION must be defined (host/CMakeLists.txt)"
#endif

// The ABI declares ph_status as an opaque struct in the global namespace.
struct ph_status {
  ph_code code;
  std::string message;
};

namespace ph::host {

namespace {

// Returned when even a status cannot be allocated; never freed.
ph_status g_out_of_memory{PH_ERR_OUT_OF_MEMORY, "out of memory (making a status)"};

std::atomic<int> g_log_level{PH_LOG_INFO};

ph_status* abi_status_new(const ph_host*, ph_code code, const char* message) {
  // The ABI promises non-NULL for an error; a plugin passing PH_OK still gets a status
  // it must release, and the host treats it as an error (code PH_ERR_INTERNAL), because
  // a non-NULL status is how failure is signalled.
  if (code == PH_OK) code = PH_ERR_INTERNAL;
  try {
    return new ph_status{code, message ? message : "(no message)"};
  } catch (...) {
    return &g_out_of_memory;
  }
}

void abi_status_release(const ph_host*, ph_status* status) {
  if (status != &g_out_of_memory) delete status;
}

const char* level_name(ph_log_level level) {
  switch (level) {
    case PH_LOG_DEBUG:
      return "debug";
    case PH_LOG_INFO:
      return "info";
    case PH_LOG_WARNING:
      return "warning";
    case PH_LOG_ERROR:
      return "error";
    default:
      return "log";
  }
}

void abi_log(const ph_host*, ph_log_level level, const char* message) {
  if (level < g_log_level.load()) return;
  std::fprintf(stderr, "plugin %s: %s\n", level_name(level), message ? message : "");
}

const void* abi_get_service(const ph_host*, const char* id) {
  return base_service(id);
}

}  // namespace

const ph_host* base_host() {
  // A function-local static: usable from other translation units' static initialisers.
  static const ph_host host = [] {
    ph_host h{};
    h.struct_size = sizeof(ph_host);
    h.abi_major = PH_ABI_MAJOR;
    h.abi_minor = PH_ABI_MINOR;
    h.name = "prompthost";
    h.version = PROMPTHOST_VERSION;
    h.host_data = nullptr;
    h.status_new = &abi_status_new;
    h.status_release = &abi_status_release;
    h.log = &abi_log;
    h.get_service = &abi_get_service;
    return h;
  }();
  return &host;
}

const void* base_service(const char* id) {
  if (id && !std::strcmp(id, PH_SERVICE_RANDOM)) return random_service();
  if (id && !std::strcmp(id, PH_SERVICE_TENSOR_FILES)) return tensor_files_service();
  return nullptr;
}

ph_status* new_status(ph_code code, const std::string& message) {
  return abi_status_new(base_host(), code, message.c_str());
}

ph_code status_code(const ph_status* status) {
  return status ? status->code : PH_OK;
}

const char* status_message(const ph_status* status) {
  return status ? status->message.c_str() : "";
}

const char* status_code_name(ph_code code) {
  switch (code) {
    case PH_OK:
      return "ok";
    case PH_ERR_INVALID_ARGUMENT:
      return "invalid argument";
    case PH_ERR_INVALID_CONFIG:
      return "invalid config";
    case PH_ERR_UNSUPPORTED:
      return "unsupported";
    case PH_ERR_OUT_OF_MEMORY:
      return "out of memory";
    case PH_ERR_DATA_LOSS:
      return "data loss";
    case PH_ERR_IO:
      return "i/o error";
    case PH_ERR_INTERNAL:
      return "internal error";
    default:
      return "unknown error code";
  }
}

void check_status(ph_status* status, const std::string& context) {
  if (!status) return;
  std::string message = context + ": " + status->message;
  abi_status_release(base_host(), status);
  throw Error(message);
}

void set_log_level(ph_log_level level) {
  g_log_level = level;
}

}  // namespace ph::host
