// Runs one check, in a forked child (default) or in this process, and turns whatever
// happens (return, exception, crash, hang, exit) into a Result.
#pragma once

#include <string>
#include <vector>

#include "host/validate/check.h"

namespace ph::validate {

enum class Status { kPass, kFail, kSkip };

const char* status_word(Status status);  // "PASS", "FAIL", "SKIP"

struct Result {
  std::string name;
  Status status = Status::kFail;
  std::string message;  // why it failed or was skipped; empty for a pass
  std::vector<std::string> notes;
  double seconds = 0.0;
};

// Runs the check here: exceptions become a fail or skip, a crash ends the process.
Result run_in_process(const Check& check, const Context& ctx);

// Runs the check in a forked child with `timeout_seconds`. A child killed by a signal
// fails with "crash (signal N, NAME)", one still running at the deadline is killed and
// fails with "timeout after N s", one that exits without reporting fails with its exit
// status. The child's stdout goes to stderr, so plugin output never mixes with the report.
Result run_forked(const Check& check, const Context& ctx, double timeout_seconds);

}  // namespace ph::validate
