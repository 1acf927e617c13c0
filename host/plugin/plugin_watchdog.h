// --plugin-timeout: a thread that ends the process when a single plugin call has been
// running longer than a limit, saying which plugin and which call. A plugin runs in the
// host's process and a hung call cannot be cancelled, so the watchdog does not try: it
// prints the report, flushes what it safely can and exits with status 1 (files already
// saved, such as the last checkpoint, stay as they are).
#pragma once

#include <condition_variable>
#include <mutex>
#include <thread>

namespace ph::host {

class PluginWatchdog {
 public:
  // limit_seconds <= 0 (or NaN): no watchdog, no thread.
  explicit PluginWatchdog(double limit_seconds);
  ~PluginWatchdog();
  PluginWatchdog(const PluginWatchdog&) = delete;
  PluginWatchdog& operator=(const PluginWatchdog&) = delete;

 private:
  void watch();

  double limit_seconds_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace ph::host
