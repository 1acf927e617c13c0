// What every fuzz target shares: the input written to a file (the parsers read files,
// as users hand them over), split into several files where a target reads a folder, and
// the rule that a parser may only fail with ph::Error. Anything else escaping — a
// nlohmann exception, std::bad_alloc, std::out_of_range — is a bug libFuzzer must see,
// so it is left uncaught (libFuzzer reports the uncaught exception as a crash).
#pragma once

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include "models/common/error.h"

namespace ph::fuzz {

// A folder of this process's own under $TMPDIR (default /tmp), made once.
inline const std::string& scratch_dir() {
  static const std::string dir = [] {
    const char* tmp = std::getenv("TMPDIR");
    const auto path = std::filesystem::path(tmp && *tmp ? tmp : "/tmp") /
                      ("prompthost-fuzz-" + std::to_string(::getpid()));
    std::filesystem::create_directories(path);
    return path.string();
  }();
  return dir;
}

// Writes `bytes` to scratch_dir()/name and returns the path.
inline std::string write_file(const std::string& name, std::string_view bytes) {
  const std::string path = scratch_dir() + "/" + name;
  std::ofstream(path, std::ios::binary | std::ios::trunc).write(bytes.data(), bytes.size());
  return path;
}

// The input cut at its first `parts - 1` NUL bytes (missing parts are empty): how one
// fuzzer input becomes several files, or a file and a text.
inline std::vector<std::string_view> split_input(const uint8_t* data, size_t size, int parts) {
  std::string_view rest(reinterpret_cast<const char*>(data), size);
  std::vector<std::string_view> out;
  for (int i = 0; i + 1 < parts; ++i) {
    const size_t nul = rest.find('\0');
    out.push_back(rest.substr(0, nul));
    rest = nul == std::string_view::npos ? std::string_view() : rest.substr(nul + 1);
  }
  out.push_back(rest);
  return out;
}

// Runs fn; a ph::Error is the parser doing its job (it must name something, so it may
// not be empty). Returns whether fn succeeded.
template <class Fn>
bool expect_only_ph_errors(Fn&& fn) {
  try {
    fn();
    return true;
  } catch (const ph::Error& e) {
    if (std::string_view(e.what()).empty()) __builtin_trap();
    return false;
  }
}

}  // namespace ph::fuzz
