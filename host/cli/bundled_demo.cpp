#include "host/cli/bundled_demo.h"

#include <cstdlib>
#include <filesystem>

#ifndef PROMPTHOST_DEMO_DIR
#error "PROMPTHOST_DEMO_DIR must name the source tree's demo folder (set in host/CMakeLists.txt)"
#endif

namespace ph::cli {

namespace fs = std::filesystem;

std::string bundled_demo_dir() {
  if (const char* env = std::getenv("PROMPTHOST_DEMO_DIR"); env && *env) return env;
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    const fs::path installed = exe.parent_path().parent_path() / "share/prompthost/demo";
    if (fs::is_directory(installed / "hf", ec)) return installed.string();
  }
  return PROMPTHOST_DEMO_DIR;
}

std::string bundled_demo_path(const std::string& relative) {
  return bundled_demo_dir() + "/" + relative;
}

}  // namespace ph::cli
