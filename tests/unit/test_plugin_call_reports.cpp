// Which plugin call is running (plugin_call.h) and what is built on it: the crash report
// (crash_report.h), where a fatal signal inside a plugin call names the plugin and the
// call, then goes on to the handler installed before (a sanitizer's, say) or to the
// default action, so the process still dies of it; and the watchdog of --plugin-timeout
// (plugin_watchdog.h). Each crash or stop runs in a forked child.
#include <catch.hpp>

#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "host/plugin/crash_report.h"
#include "host/plugin/plugin_call.h"
#include "host/plugin/plugin_watchdog.h"

using namespace ph::host;

namespace {

struct ChildEnd {
  int wstatus = 0;
  std::string err;  // what the child wrote to stderr
};

// Runs body in a forked child whose stderr is captured; the child exits 0 if body returns.
ChildEnd run_in_child(const std::function<void()>& body) {
  int fds[2];
  REQUIRE(pipe(fds) == 0);
  const pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    close(fds[0]);
    dup2(fds[1], STDERR_FILENO);
    body();
    _exit(0);
  }
  close(fds[1]);
  ChildEnd end;
  char buffer[4096];
  for (ssize_t n; (n = read(fds[0], buffer, sizeof buffer)) > 0;) end.err.append(buffer, (size_t)n);
  close(fds[0]);
  REQUIRE(waitpid(pid, &end.wstatus, 0) == pid);
  return end;
}

void set_disposition(int signal, void (*handler)(int)) {
  struct sigaction action = {};
  action.sa_handler = handler;
  sigemptyset(&action.sa_mask);
  sigaction(signal, &action, nullptr);
}

// A previous handler in the style of AddressSanitizer's: SA_SIGINFO, reports, exits.
void previous_handler(int signal, siginfo_t* info, void*) {
  const char text[] = "previous handler ran\n";
  if (write(STDERR_FILENO, text, sizeof text - 1) < 0) _exit(98);
  _exit(signal == SIGSEGV && info && info->si_signo == SIGSEGV ? 42 : 99);
}

void crash_by_invalid_write() {
  // A wild write, to a page that cannot be written: a real SIGSEGV, and not undefined
  // behaviour a sanitizer would stop at first (as a store through null would be).
  void* page = mmap(nullptr, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  *static_cast<volatile int*>(page) = 1;
}

bool died_of(const ChildEnd& end, int signal) {
  return WIFSIGNALED(end.wstatus) && WTERMSIG(end.wstatus) == signal;
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

}  // namespace

TEST_CASE("a plugin call scope marks the call on its thread and restores the enclosing one") {
  CHECK(running_plugin_call().plugin == nullptr);
  {
    PluginCallScope outer("outer_plugin", "forward");
    RunningPluginCall r = running_plugin_call();
    CHECK(std::string(r.plugin) == "outer_plugin");
    CHECK(std::string(r.call) == "forward");
    CHECK(r.on_this_thread);
    const int64_t outer_start = r.started_ns;
    CHECK(outer_start <= monotonic_ns());
    {
      PluginCallScope inner("inner_plugin", "init");
      CHECK(std::string(running_plugin_call().call) == "init");
    }
    r = running_plugin_call();
    CHECK(std::string(r.plugin) == "outer_plugin");
    CHECK(std::string(r.call) == "forward");
    CHECK(r.started_ns == outer_start);
  }
  CHECK(running_plugin_call().plugin == nullptr);
  CHECK(in_plugin_call("p", "parameter_count", [] { return 7; }) == 7);
}

TEST_CASE("another thread's plugin call is seen, and the longest-running one is chosen") {
  std::mutex mutex;
  std::condition_variable changed;
  bool inside = false, leave = false;
  std::thread worker([&] {
    PluginCallScope call("worker_plugin", "backward");
    std::unique_lock<std::mutex> lock(mutex);
    inside = true;
    changed.notify_all();
    changed.wait(lock, [&] { return leave; });
  });
  {
    std::unique_lock<std::mutex> lock(mutex);
    changed.wait(lock, [&] { return inside; });
  }
  RunningPluginCall r = running_plugin_call();
  REQUIRE(r.plugin);
  CHECK(std::string(r.plugin) == "worker_plugin");
  CHECK_FALSE(r.on_this_thread);
  {
    PluginCallScope mine("main_plugin", "forward");  // started later than the worker's
    CHECK(std::string(running_plugin_call().plugin) == "main_plugin");
    CHECK(std::string(longest_running_plugin_call().plugin) == "worker_plugin");
  }
  {
    std::lock_guard<std::mutex> lock(mutex);
    leave = true;
  }
  changed.notify_all();
  worker.join();
  CHECK(longest_running_plugin_call().plugin == nullptr);
}

TEST_CASE("a crash in a plugin call names the plugin and the call, then dies of the signal") {
  const ChildEnd end = run_in_child([] {
    set_disposition(SIGSEGV, SIG_DFL);
    install_plugin_crash_report();
    PluginCallScope call("crashy", "forward");
    crash_by_invalid_write();
  });
  CHECK(died_of(end, SIGSEGV));
  CHECK(contains(end.err, "plugin \"crashy\" crashed in its forward call (SIGSEGV"));
}

TEST_CASE("the crash report hands the signal to the handler installed before it") {
  const ChildEnd end = run_in_child([] {
    struct sigaction action = {};
    action.sa_sigaction = previous_handler;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_SIGINFO;
    sigaction(SIGSEGV, &action, nullptr);
    install_plugin_crash_report();
    install_plugin_crash_report();  // a second install changes nothing
    PluginCallScope call("crashy", "backward");
    crash_by_invalid_write();
  });
  REQUIRE(WIFEXITED(end.wstatus));
  CHECK(WEXITSTATUS(end.wstatus) == 42);  // the previous handler saw the SIGSEGV with its info
  const size_t report = end.err.find("plugin \"crashy\" crashed in its backward call (SIGSEGV");
  REQUIRE(report != std::string::npos);
  CHECK(end.err.find("previous handler ran", report) != std::string::npos);  // and after ours
  CHECK(end.err.find("previous handler ran") == end.err.rfind("previous handler ran"));
}

TEST_CASE("abort in a plugin call is reported and still aborts") {
  const ChildEnd end = run_in_child([] {
    set_disposition(SIGABRT, SIG_DFL);
    install_plugin_crash_report();
    PluginCallScope call("aborts", "export_adapter");
    std::abort();
  });
  CHECK(died_of(end, SIGABRT));
  CHECK(contains(end.err, "plugin \"aborts\" crashed in its export_adapter call (SIGABRT"));
}

TEST_CASE("a crash on another thread during a plugin call says so") {
  const ChildEnd end = run_in_child([] {
    set_disposition(SIGSEGV, SIG_DFL);
    install_plugin_crash_report();
    PluginCallScope call("threaded", "forward");
    std::thread(crash_by_invalid_write).join();
  });
  CHECK(died_of(end, SIGSEGV));
  CHECK(contains(end.err,
                 "SIGSEGV (invalid memory access) on another thread while plugin "
                 "\"threaded\" was in its forward call"));
}

TEST_CASE("a crash outside any plugin call is not blamed on a plugin") {
  const ChildEnd end = run_in_child([] {
    set_disposition(SIGSEGV, SIG_DFL);
    install_plugin_crash_report();
    { PluginCallScope call("finished", "forward"); }
    crash_by_invalid_write();
  });
  CHECK(died_of(end, SIGSEGV));
  INFO(end.err);
  CHECK_FALSE(contains(end.err, "\"finished\""));  // the plugin's name, in no report
  CHECK_FALSE(contains(end.err, " call (SIGSEGV"));
}

TEST_CASE("the watchdog stops a plugin call that runs longer than its limit") {
  const int64_t start = monotonic_ns();
  const ChildEnd end = run_in_child([] {
    const PluginWatchdog watchdog(0.2);
    PluginCallScope call("sleepy", "backward");
    std::this_thread::sleep_for(std::chrono::seconds(30));
  });
  const double seconds = (double)(monotonic_ns() - start) / 1e9;
  REQUIRE(WIFEXITED(end.wstatus));
  CHECK(WEXITSTATUS(end.wstatus) == 1);
  CHECK(contains(end.err, "plugin \"sleepy\" has been in its backward call for 0."));
  CHECK(contains(end.err, "s, longer than --plugin-timeout 0.2; stopping"));
  CHECK(seconds >= 0.2);
  CHECK(seconds < 10);
}

TEST_CASE("the watchdog lets calls shorter than its limit be, however many there are") {
  const ChildEnd end = run_in_child([] {
    const PluginWatchdog watchdog(0.3);
    for (int i = 0; i < 30; ++i) {  // 0.6 s of plugin calls in all, each 20 ms
      PluginCallScope call("brisk", "forward");
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(400));  // outside any call
  });
  CHECK(WIFEXITED(end.wstatus));
  CHECK(WEXITSTATUS(end.wstatus) == 0);
  CHECK(end.err.empty());
  CHECK_NOTHROW(PluginWatchdog(0));  // no limit: no thread
}
