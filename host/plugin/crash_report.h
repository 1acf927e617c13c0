// Plugins run in the host's process (for speed), so a plugin that crashes takes the
// process with it. This makes it say so: a fatal signal (SIGSEGV, SIGBUS, SIGFPE, SIGILL,
// SIGABRT) raised while a plugin call is running (plugin_call.h) prints which plugin and
// which call on stderr. The process still dies of the signal: the handler then hands it
// to the handler installed before (AddressSanitizer's, say, whose report follows) or to
// the default action, so the exit status is the signal's and nothing runs on after the
// crash (files already saved, such as the last checkpoint, stay as they are).
#pragma once

namespace ph::host {

// Installs the handler once per process (later calls do nothing), and an alternate
// signal stack for the calling thread if it has none, so that a stack overflow is
// reported too.
void install_plugin_crash_report();

// What else to say on a fatal signal, before it is handed on: called from the signal
// handler, so it must be async-signal-safe (write(2); no allocation, no locks, no stdio).
// Notes run in the order added, after the plugin report; up to 4 per process (a fifth is
// refused: false). The first note installs the handler as install_plugin_crash_report
// does, without the plugin report.
using FatalSignalNote = void (*)(int signal);
bool add_fatal_signal_note(FatalSignalNote note);

}  // namespace ph::host
