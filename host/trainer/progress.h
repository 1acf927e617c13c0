// Progress of a long job: a one-line bar with ETA on a terminal, plain log lines
// otherwise (CI logs, files).
#pragma once

#include <chrono>
#include <string>

namespace ph::trainer {

class Progress {
 public:
  Progress(int total, int log_every, bool quiet);
  // Reports unit `done` of `total` with a status text (loss, tokens/s, ...).
  void update(int done, const std::string& status);
  // Ends the bar's line (terminal) before other output.
  void finish_line();
  // Starts the clock the ETA is computed from, with `done` units already behind (a
  // resumed run).
  void restart(int done) {
    start_ = std::chrono::steady_clock::now();
    start_done_ = done;
  }
  // Prints a line of its own without breaking the bar.
  void message(const std::string& line);

 private:
  int total_, log_every_;
  int start_done_ = 0;
  bool quiet_, terminal_, bar_open_ = false;
  std::chrono::steady_clock::time_point start_;
};

std::string format_duration(double seconds);

}  // namespace ph::trainer
