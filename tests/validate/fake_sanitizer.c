/* Stands in for a sanitizer's deadly-signal handler, preloaded into prompthost-validate:
 * like AddressSanitizer's, it is installed before main, reports, and ends the process
 * with exit status 1 instead of letting it die of the signal. The runner's crash
 * isolation must still say "crash (signal N, ...)" (tests/validate/CMakeLists.txt). */
#include <signal.h>
#include <string.h>
#include <unistd.h>

static void on_deadly_signal(int signal, siginfo_t* info, void* context) {
  static const char text[] = "fake sanitizer: deadly signal, exiting with status 1\n";
  (void)signal;
  (void)info;
  (void)context;
  if (write(STDERR_FILENO, text, sizeof text - 1) < 0) _exit(2);
  _exit(1);
}

__attribute__((constructor)) static void install(void) {
  const int deadly[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL};
  struct sigaction action;
  memset(&action, 0, sizeof action);
  action.sa_sigaction = on_deadly_signal;
  action.sa_flags = SA_SIGINFO;
  sigemptyset(&action.sa_mask);
  for (size_t i = 0; i < sizeof deadly / sizeof deadly[0]; ++i) sigaction(deadly[i], &action, NULL);
}
