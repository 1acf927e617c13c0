#include "host/validate/runner.h"

#include <poll.h>
#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <exception>

#include <nlohmann/json.hpp>

#include "host/plugin/crash_report.h"

namespace ph::validate {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

Status status_from_word(const std::string& word) {
  if (word == "PASS") return Status::kPass;
  if (word == "SKIP") return Status::kSkip;
  return Status::kFail;
}

nlohmann::json to_json(const Result& r) {
  return {{"status", status_word(r.status)}, {"message", r.message}, {"notes", r.notes}};
}

// Writes all of `text` to `fd`, retrying on partial writes and EINTR.
void write_all(int fd, const std::string& text) {
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    done += (size_t)n;
  }
}

std::string signal_text(int signal) {
  const char* name = strsignal(signal);
  return "crash (signal " + std::to_string(signal) + (name ? std::string(", ") + name : "") + ")";
}

// A crash of the check's process, reported to the parent through the report pipe before
// the signal is handed on: to the default action (the parent then also sees the signal)
// or to a sanitizer's handler, which ends the process with an exit status of its own.
int g_crash_fd = -1;
std::string g_crash_reports[NSIG];  // the report for each signal, made before the check

void write_crash_report(int signal) {
  if (g_crash_fd >= 0 && signal > 0 && signal < NSIG)
    write_all(g_crash_fd, g_crash_reports[signal]);
}

void report_crashes_to(int fd) {
  g_crash_fd = fd;
  for (int signal : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT}) {
    const nlohmann::json report = {{"status", "FAIL"},
                                   {"message", signal_text(signal)},
                                   {"notes", nlohmann::json::array()},
                                   {"crash", true}};
    g_crash_reports[signal] = report.dump();
  }
  host::add_fatal_signal_note(&write_crash_report);
}

// Whether the child's text is a crash report (write_crash_report).
bool crash_report(const std::string& text) {
  const auto j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  return j.is_object() && j.value("crash", false);
}

// Reads the child's report from `fd` until EOF or the deadline; false on timeout.
bool read_report(int fd, Clock::time_point deadline, std::string& text) {
  char buffer[4096];
  for (;;) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return false;
    pollfd p{fd, POLLIN, 0};
    const int ready = poll(&p, 1, (int)std::min<long long>(left.count(), 1000));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) continue;
    const ssize_t n = read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return true;  // EOF (or an error: the child's status tells the rest)
    text.append(buffer, (size_t)n);
  }
}

}  // namespace

const char* status_word(Status status) {
  switch (status) {
    case Status::kPass:
      return "PASS";
    case Status::kSkip:
      return "SKIP";
    case Status::kFail:
      break;
  }
  return "FAIL";
}

Result run_in_process(const Check& check, const Context& ctx) {
  Result result;
  result.name = check.name;
  Report report;
  const auto start = Clock::now();
  try {
    check.run(ctx, report);
    result.status = Status::kPass;
  } catch (const CheckSkipped& e) {
    result.status = Status::kSkip;
    result.message = e.what();
  } catch (const CheckFailed& e) {
    result.message = e.what();
  } catch (const std::exception& e) {
    result.message = e.what();
  } catch (...) {
    result.message = "unknown exception";
  }
  result.notes = std::move(report.notes);
  result.seconds = seconds_since(start);
  return result;
}

Result run_forked(const Check& check, const Context& ctx, double timeout_seconds) {
  Result result;
  result.name = check.name;
  const auto start = Clock::now();
  int fds[2];
  if (pipe(fds) != 0) {
    result.message = std::string("cannot create a pipe: ") + std::strerror(errno);
    return result;
  }
  std::fflush(nullptr);  // or the child would write the parent's buffered output again
  const pid_t pid = fork();
  if (pid < 0) {
    result.message = std::string("cannot fork: ") + std::strerror(errno);
    close(fds[0]);
    close(fds[1]);
    return result;
  }
  if (pid == 0) {  // the child: run, report as one JSON object, leave without cleanup
    close(fds[0]);
    dup2(STDERR_FILENO, STDOUT_FILENO);
    report_crashes_to(fds[1]);
    const Result r = run_in_process(check, ctx);
    g_crash_fd = -1;  // the report below is the verdict now
    write_all(fds[1], to_json(r).dump());
    close(fds[1]);
    std::fflush(nullptr);
    _exit(0);
  }

  close(fds[1]);
  std::string text;
  const auto deadline =
      start + std::chrono::milliseconds((long long)(timeout_seconds * 1000.0 + 0.5));
  const bool finished = read_report(fds[0], deadline, text);
  close(fds[0]);
  if (!finished) kill(pid, SIGKILL);
  int wstatus = 0;
  while (waitpid(pid, &wstatus, 0) < 0 && errno == EINTR) {
  }
  result.seconds = seconds_since(start);

  if (!finished) {
    char limit[32];
    std::snprintf(limit, sizeof limit, "%g", timeout_seconds);
    result.message = std::string("timeout after ") + limit + " s";
  } else if (WIFSIGNALED(wstatus)) {
    result.message = signal_text(WTERMSIG(wstatus));
  } else if (!crash_report(text) &&
             (!WIFEXITED(wstatus) || WEXITSTATUS(wstatus) != 0 || text.empty())) {
    result.message = "the check's process exited with status " +
                     std::to_string(WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : -1) +
                     " without reporting (the plugin called exit?)";
  } else {  // the check's report, or the crash report of a process a sanitizer ended
    try {
      const auto j = nlohmann::json::parse(text);
      result.status = status_from_word(j.at("status").get<std::string>());
      result.message = j.at("message").get<std::string>();
      result.notes = j.at("notes").get<std::vector<std::string>>();
    } catch (const std::exception& e) {
      result.status = Status::kFail;
      result.message = std::string("unreadable report from the check's process: ") + e.what();
    }
  }
  return result;
}

}  // namespace ph::validate
