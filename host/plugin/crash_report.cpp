#include "host/plugin/crash_report.h"

#include <errno.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstddef>
#include <mutex>

#include "host/plugin/plugin_call.h"

namespace ph::host {

namespace {

struct FatalSignal {
  int number;
  const char* name;
  const char* meaning;
};
const FatalSignal kFatalSignals[] = {
    {SIGSEGV, "SIGSEGV", "invalid memory access"},
    {SIGBUS, "SIGBUS", "bus error"},
    {SIGFPE, "SIGFPE", "arithmetic exception"},
    {SIGILL, "SIGILL", "illegal instruction"},
    {SIGABRT, "SIGABRT", "aborted"},
};
constexpr size_t kCount = sizeof kFatalSignals / sizeof kFatalSignals[0];
struct sigaction g_previous[kCount];  // what handled each signal before us

std::atomic<bool> g_report_plugin_calls{false};
constexpr size_t kMaxNotes = 4;
std::atomic<FatalSignalNote> g_notes[kMaxNotes];  // null: a free place

// Text assembled without allocating (a signal handler may not): what does not fit is cut.
struct Message {
  char text[1024];
  size_t size = 0;
  Message& operator<<(const char* s) {
    for (; s && *s && size < sizeof text; ++s) text[size++] = *s;
    return *this;
  }
};

void write_to_stderr(const Message& m) {
  size_t done = 0;
  while (done < m.size) {
    const ssize_t n = write(STDERR_FILENO, m.text + done, m.size - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    done += (size_t)n;
  }
}

void report_plugin_call(const FatalSignal& s) {
  const RunningPluginCall call = running_plugin_call();
  if (!call.plugin) return;  // the host's own crash: left to the usual report
  Message m;
  m << "\n" << program_invocation_short_name << ": ";
  if (call.on_this_thread)
    m << "plugin \"" << call.plugin << "\" crashed in its " << call.call << " call (" << s.name
      << ", " << s.meaning << ")";
  else
    m << s.name << " (" << s.meaning << ") on another thread while plugin \"" << call.plugin
      << "\" was in its " << call.call << " call";
  m << "; the process stops here\n";
  write_to_stderr(m);
}

// Hands the signal on as if this handler had never been installed.
void pass_on(size_t i, int signal, siginfo_t* info, void* context) {
  const struct sigaction& previous = g_previous[i];
  sigaction(signal, &previous, nullptr);  // a fault in what follows goes straight there
  if ((previous.sa_flags & SA_SIGINFO) && previous.sa_sigaction) {
    previous.sa_sigaction(signal, info, context);
    return;
  }
  if (!(previous.sa_flags & SA_SIGINFO) && previous.sa_handler != SIG_DFL &&
      previous.sa_handler != SIG_IGN) {
    previous.sa_handler(signal);
    return;
  }
  // The default action. Raised now, the signal is pending until this handler returns
  // (it is blocked meanwhile), then kills the process: the same for a fault, whose
  // instruction would fault again, and for a signal sent with kill or raise.
  struct sigaction fallback = {};
  fallback.sa_handler = SIG_DFL;
  sigemptyset(&fallback.sa_mask);
  sigaction(signal, &fallback, nullptr);
  raise(signal);
}

void on_fatal_signal(int signal, siginfo_t* info, void* context) {
  const int saved_errno = errno;
  size_t i = 0;
  while (i < kCount && kFatalSignals[i].number != signal) ++i;
  if (i == kCount) return;  // not one of ours (cannot happen)
  if (g_report_plugin_calls.load()) report_plugin_call(kFatalSignals[i]);
  for (const auto& note : g_notes)
    if (const FatalSignalNote n = note.load()) n(signal);
  errno = saved_errno;
  pass_on(i, signal, info, context);
}

// A stack for the handler, so that a stack overflow (SIGSEGV on the exhausted stack) is
// reported too. Kept if the thread has one (AddressSanitizer installs its own).
void ensure_alternate_stack() {
  stack_t current = {};
  if (sigaltstack(nullptr, &current) == 0 && !(current.ss_flags & SS_DISABLE)) return;
  static char memory[64 * 1024];
  stack_t stack = {};
  stack.ss_sp = memory;
  stack.ss_size = sizeof memory;
  sigaltstack(&stack, nullptr);
}

void install_handler() {
  static std::once_flag once;
  std::call_once(once, [] {
    ensure_alternate_stack();
    for (size_t i = 0; i < kCount; ++i) {
      struct sigaction action = {};
      action.sa_sigaction = on_fatal_signal;
      sigemptyset(&action.sa_mask);
      action.sa_flags = SA_SIGINFO | SA_ONSTACK;
      sigaction(kFatalSignals[i].number, &action, &g_previous[i]);
    }
  });
}

}  // namespace

void install_plugin_crash_report() {
  g_report_plugin_calls.store(true);
  install_handler();
}

bool add_fatal_signal_note(FatalSignalNote note) {
  static std::mutex adding;
  std::lock_guard<std::mutex> lock(adding);
  for (auto& place : g_notes) {
    if (place.load()) continue;
    place.store(note);
    install_handler();
    return true;
  }
  return false;
}

}  // namespace ph::host
