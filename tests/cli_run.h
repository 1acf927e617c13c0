// Runs the prompthost executable as a user would, for the suites that check a whole
// command (PROMPTHOST_EXE, set in tests/CMakeLists.txt): exit code, stdout and stderr.
#pragma once

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "test_support.h"

#ifndef PROMPTHOST_EXE
#error "PROMPTHOST_EXE must name the prompthost executable (tests/CMakeLists.txt)"
#endif

namespace ph::test {

struct CommandResult {
  int code = -1;  // exit code; -1 when killed by a signal
  std::string out, err;
};

// Single-quoted for /bin/sh.
inline std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

// prompthost ARGS..., stdout captured, stderr kept in a file of `work`.
inline CommandResult run_prompthost(const std::vector<std::string>& args, const std::string& work) {
  const std::string err_file = work + "/stderr.txt";
  std::string command = shell_quote(PROMPTHOST_EXE);
  for (const auto& a : args) command += " " + shell_quote(a);
  command += " 2>" + shell_quote(err_file);
  CommandResult r;
  FILE* pipe = popen(command.c_str(), "r");
  if (!pipe) return r;
  std::array<char, 4096> buffer;
  size_t n = 0;
  while ((n = fread(buffer.data(), 1, buffer.size(), pipe)) > 0) r.out.append(buffer.data(), n);
  const int status = pclose(pipe);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::ifstream in(err_file);
  r.err.assign(std::istreambuf_iterator<char>(in), {});
  return r;
}

// $PROMPTHOST_HF_MODELS: the fixture models (comma-separated) a suite over the Hugging
// Face fixtures checks; unset or empty: all (ctest runs the implemented ones one by one).
inline bool hf_model_selected(const std::string& model) {
  const char* env = std::getenv("PROMPTHOST_HF_MODELS");
  if (!env || !*env) return true;
  return ("," + std::string(env) + ",").find("," + model + ",") != std::string::npos;
}

}  // namespace ph::test
