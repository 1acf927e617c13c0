// The host's side of ph_status, and the process-wide ph_host table handed to plugin init.
#pragma once

#include <string>

#include "prompthost_sdk/plugin_abi.h"

namespace ph::host {

// The ph_host every plugin's init receives (status, log, get_service; no model).
const ph_host* base_host();

// The services every host table of this process offers (ph.host.random/1,
// ph.host.tensor-files/1), or NULL.
// A ModelHost answers its own ids first and falls back to this.
const void* base_service(const char* id);

// A new status (what ph_host.status_new makes); for host-side callbacks such as sinks.
ph_status* new_status(ph_code code, const std::string& message);

// Code and message of a status (made by any ph_host of this process).
ph_code status_code(const ph_status* status);
const char* status_message(const ph_status* status);
// "invalid argument", "unsupported", ... for messages.
const char* status_code_name(ph_code code);

// Throws ph::Error("<context>: <message>") and releases the status if it is not NULL.
void check_status(ph_status* status, const std::string& context);

// Log lines from plugins go to stderr at or above this level (default PH_LOG_INFO).
void set_log_level(ph_log_level level);

}  // namespace ph::host
