// The subcommands of `prompthost`. Each takes argv from the command name on
// (argv[0] == "generate", ...) and returns the process exit code:
// 0 success, 1 failure, 2 usage error.
#pragma once

namespace ph::cli {

constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

struct Command {
  const char* name;
  const char* summary;
  int (*run)(int argc, char** argv);
};

int train_command(int argc, char** argv);
int eval_command(int argc, char** argv);
int generate_command(int argc, char** argv);
int inspect_command(int argc, char** argv);
int plugins_command(int argc, char** argv);
int bench_command(int argc, char** argv);
int tokenize_command(int argc, char** argv);
int serve_command(int argc, char** argv);
int compose_command(int argc, char** argv);

}  // namespace ph::cli
