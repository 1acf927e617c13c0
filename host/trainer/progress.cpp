#include "host/trainer/progress.h"

#include <unistd.h>

#include <cstdio>

namespace ph::trainer {

std::string format_duration(double s) {
  char buf[32];
  if (s < 60)
    std::snprintf(buf, sizeof buf, "%.1fs", s);
  else if (s < 3600)
    std::snprintf(buf, sizeof buf, "%dm%02ds", (int)s / 60, (int)s % 60);
  else
    std::snprintf(buf, sizeof buf, "%dh%02dm", (int)s / 3600, ((int)s % 3600) / 60);
  return buf;
}

Progress::Progress(int total, int log_every, bool quiet)
    : total_(total),
      log_every_(log_every > 0 ? log_every : 10),
      quiet_(quiet),
      terminal_(isatty(STDERR_FILENO)),
      start_(std::chrono::steady_clock::now()) {}

void Progress::update(int done, const std::string& status) {
  if (quiet_) return;
  const double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const int measured = done - start_done_;
  const double eta = measured > 0 ? elapsed / measured * (total_ - done) : 0.0;
  if (terminal_) {
    const int width = 24, filled = total_ > 0 ? width * done / total_ : 0;
    std::string bar(filled, '#');
    bar.resize(width, '.');
    std::fprintf(stderr, "\r[%s] %d/%d %s ETA %s   ", bar.c_str(), done, total_, status.c_str(),
                 format_duration(eta).c_str());
    std::fflush(stderr);
    bar_open_ = true;
  } else if (done % log_every_ == 0 || done == total_) {
    std::fprintf(stderr, "step %d/%d %s elapsed %s ETA %s\n", done, total_, status.c_str(),
                 format_duration(elapsed).c_str(), format_duration(eta).c_str());
  }
}

void Progress::finish_line() {
  if (bar_open_) std::fputc('\n', stderr);
  bar_open_ = false;
}

void Progress::message(const std::string& line) {
  if (quiet_) return;
  finish_line();
  std::fprintf(stderr, "%s\n", line.c_str());
}

}  // namespace ph::trainer
