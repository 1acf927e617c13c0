// Which plugin call is running, on every thread. The host marks each call that crosses
// the ABI (plugin_library.cpp, method_instance.cpp) with a PluginCallScope, so that a
// crash inside a plugin (crash_report.h) or a call that never returns (plugin_watchdog.h)
// can be reported with the plugin's name and the call. Lock-free and allocation-free:
// the crash report reads it from a signal handler.
#pragma once

#include <cstdint>

namespace ph::host {

// Marks `call` of `plugin` as running on this thread while the scope lives. Both strings
// must outlive the scope (a descriptor's name, a path, a string literal). Scopes nest:
// the enclosing call is restored at the end. Untracked (a no-op) on a thread beyond the
// first 64 that make plugin calls at once.
class PluginCallScope {
 public:
  PluginCallScope(const char* plugin, const char* call) noexcept;
  ~PluginCallScope();
  PluginCallScope(const PluginCallScope&) = delete;
  PluginCallScope& operator=(const PluginCallScope&) = delete;

 private:
  struct CallSlot* slot_;
  const char* outer_plugin_ = nullptr;
  const char* outer_call_ = nullptr;
  int64_t outer_started_ns_ = 0;
};

// Runs fn() (a call into a plugin) as `call` of `plugin`, returning what it returns.
template <class Fn>
auto in_plugin_call(const char* plugin, const char* call, Fn&& fn) {
  PluginCallScope scope(plugin, call);
  return fn();
}

// A plugin call in flight; plugin is null when there is none.
struct RunningPluginCall {
  const char* plugin = nullptr;
  const char* call = nullptr;
  int64_t started_ns = 0;  // monotonic_ns() when the call began
  bool on_this_thread = false;
};

// This thread's call if it is in one, else another thread's (the one running longest).
// Async-signal-safe.
RunningPluginCall running_plugin_call() noexcept;

// The call, on any thread, that has been running longest (the watchdog's question).
RunningPluginCall longest_running_plugin_call() noexcept;

// CLOCK_MONOTONIC in nanoseconds (async-signal-safe).
int64_t monotonic_ns() noexcept;

}  // namespace ph::host
