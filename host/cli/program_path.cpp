#include "host/cli/program_path.h"

#include <cstdlib>
#include <filesystem>
#include <sstream>

namespace ph::cli {

namespace fs = std::filesystem;

std::string program_path() {
  std::error_code ec;
  const fs::path self = fs::read_symlink("/proc/self/exe", ec);
  if (ec) return "prompthost";
  // the first `prompthost` on the PATH, if it is this very file
  if (const char* path = std::getenv("PATH")) {
    std::stringstream dirs(path);
    for (std::string dir; std::getline(dirs, dir, ':');) {
      const fs::path candidate = fs::path(dir.empty() ? "." : dir) / "prompthost";
      if (!fs::exists(candidate, ec)) continue;
      if (fs::equivalent(candidate, self, ec)) return "prompthost";
      break;  // another prompthost comes first on the PATH
    }
  }
  const fs::path cwd = fs::current_path(ec);
  if (!ec) {
    const fs::path relative = self.lexically_relative(cwd);
    if (!relative.empty() && *relative.begin() != "..") return relative.string();
  }
  return self.string();
}

}  // namespace ph::cli
