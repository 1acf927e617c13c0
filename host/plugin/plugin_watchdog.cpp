#include "host/plugin/plugin_watchdog.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>

#include "host/plugin/plugin_call.h"

namespace ph::host {

namespace {

// Reports the hung call and ends the process. stdout is flushed only if no other thread
// holds it (the hung plugin may be blocked inside a printf); the report bypasses stdio.
[[noreturn]] void stop_process(const RunningPluginCall& call, double limit_seconds) {
  char text[1024];
  const double ran = (double)(monotonic_ns() - call.started_ns) / 1e9;
  const int n = std::snprintf(text, sizeof text,
                              "\nprompthost: plugin \"%s\" has been in its %s call for %.1f s, "
                              "longer than --plugin-timeout %g; stopping\n",
                              call.plugin, call.call, ran, limit_seconds);
  if (ftrylockfile(stdout) == 0) {
    std::fflush(stdout);
    funlockfile(stdout);
  }
  if (n > 0) {
    const ssize_t written = write(STDERR_FILENO, text, std::min((size_t)n, sizeof text - 1));
    (void)written;  // nothing more to do if even stderr fails
  }
  _exit(EXIT_FAILURE);
}

}  // namespace

PluginWatchdog::PluginWatchdog(double limit_seconds) : limit_seconds_(limit_seconds) {
  if (limit_seconds_ > 0) thread_ = std::thread([this] { watch(); });
}

PluginWatchdog::~PluginWatchdog() {
  if (!thread_.joinable()) return;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  wake_.notify_one();
  thread_.join();
}

void PluginWatchdog::watch() {
  // Beyond ~292 years the limit is as good as none; the cap keeps the nanoseconds in range.
  const int64_t limit_ns = (int64_t)(std::min(limit_seconds_, 9e9) * 1e9);
  // Checked ten times per limit (between 1 ms and 100 ms apart): a hang is reported
  // within 10 % of the limit, or 100 ms.
  const auto interval =
      std::chrono::nanoseconds(std::clamp<int64_t>(limit_ns / 10, 1000000, 100000000));
  std::unique_lock<std::mutex> lock(mutex_);
  while (!wake_.wait_for(lock, interval, [this] { return stop_; })) {
    const RunningPluginCall call = longest_running_plugin_call();
    if (!call.plugin || monotonic_ns() - call.started_ns <= limit_ns) continue;
    // The same call still running (not one that ended just now), then report it.
    const RunningPluginCall again = longest_running_plugin_call();
    if (again.plugin == call.plugin && again.started_ns == call.started_ns)
      stop_process(call, limit_seconds_);
  }
}

}  // namespace ph::host
