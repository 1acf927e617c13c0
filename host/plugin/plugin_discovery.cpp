#include "host/plugin/plugin_discovery.h"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <set>

#include <nlohmann/json.hpp>

#include "models/common/error.h"

#ifndef PROMPTHOST_BUILD_PLUGIN_DIR
#error "PROMPTHOST_BUILD_PLUGIN_DIR must be defined (host/CMakeLists.txt)"
#endif
#ifndef PROMPTHOST_INSTALL_PLUGIN_DIR
#error "PROMPTHOST_INSTALL_PLUGIN_DIR must be defined (host/CMakeLists.txt)"
#endif

namespace ph::host {

namespace fs = std::filesystem;

namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// The *.so files of a folder, sorted by name (directory order is not stable).
std::vector<std::string> shared_libraries_in(const std::string& dir) {
  std::vector<std::string> files;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    std::error_code type_ec;
    if (ends_with(name, ".so") && it->is_regular_file(type_ec))
      files.push_back(it->path().string());
  }
  std::sort(files.begin(), files.end());
  return files;
}

bool is_dir(const std::string& dir) {
  std::error_code ec;
  return fs::is_directory(dir, ec);
}

}  // namespace

std::vector<std::string> plugin_search_path(const std::vector<std::string>& extra_dirs) {
  std::vector<std::string> dirs;
  auto add = [&](const std::string& dir) {
    if (!dir.empty() && std::find(dirs.begin(), dirs.end(), dir) == dirs.end()) dirs.push_back(dir);
  };
  for (const auto& d : extra_dirs) add(d);
  if (const char* env = std::getenv("PROMPTHOST_PLUGIN_PATH")) {
    const std::string value = env;
    size_t start = 0;
    while (start <= value.size()) {
      size_t colon = value.find(':', start);
      if (colon == std::string::npos) colon = value.size();
      add(value.substr(start, colon - start));  // empty entries are skipped
      start = colon + 1;
    }
  }
  // An installed prompthost finds its plugins beside itself (<prefix>/bin/../lib/...),
  // wherever the prefix was moved to; a build's prompthost finds the build's plugins.
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    const fs::path beside = exe.parent_path().parent_path() / "lib/prompthost/plugins";
    if (is_dir(beside.string())) add(beside.string());
  }
  add(PROMPTHOST_BUILD_PLUGIN_DIR);
  add(PROMPTHOST_INSTALL_PLUGIN_DIR);
  return dirs;
}

std::vector<PluginListing> list_plugins(const std::vector<std::string>& extra_dirs) {
  std::vector<PluginListing> listings;
  std::set<std::string> seen;  // the same file through two spellings of a folder
  for (const std::string& dir : plugin_search_path(extra_dirs)) {
    for (const std::string& file : shared_libraries_in(dir)) {
      std::error_code ec;
      const std::string canonical = fs::canonical(file, ec).string();
      if (!seen.insert(ec ? file : canonical).second) continue;
      PluginListing listing;
      listing.path = file;
      try {
        listing.library = PluginLibrary::load(file);
      } catch (const std::exception& e) {
        listing.error = e.what();
      }
      listings.push_back(std::move(listing));
    }
  }
  return listings;
}

std::shared_ptr<PluginLibrary> find_plugin(const std::string& name_or_file,
                                           const std::vector<std::string>& extra_dirs) {
  if (name_or_file.empty()) throw Error("no plugin named: the plugin name is empty");
  if (name_or_file.find('/') != std::string::npos || ends_with(name_or_file, ".so"))
    return PluginLibrary::load(name_or_file);

  const std::vector<std::string> dirs = plugin_search_path(extra_dirs);
  // By file name first: cheap, and it loads only the plugin asked for.
  for (const std::string& dir : dirs) {
    const std::string file = (fs::path(dir) / ("ph_" + name_or_file + ".so")).string();
    std::error_code ec;
    if (!fs::is_regular_file(file, ec)) continue;
    auto library = PluginLibrary::load(file);  // a broken one is reported, not skipped
    if (library->descriptor().name == name_or_file) return library;
  }
  // Then by descriptor name: a plugin file may be named anything.
  std::vector<std::string> found;
  size_t failed = 0;
  for (const PluginListing& listing : list_plugins(extra_dirs)) {
    if (!listing.library) {
      ++failed;
      continue;
    }
    if (listing.library->descriptor().name == name_or_file) return listing.library;
    found.push_back(std::string(listing.library->descriptor().name) + " (" + listing.path + ")");
  }

  std::string message = "no plugin named \"" + name_or_file + "\". Folders searched:";
  for (const std::string& dir : dirs) message += "\n  " + dir + (is_dir(dir) ? "" : " (missing)");
  message += "\nPlugins found:";
  if (found.empty()) message += " none";
  for (const std::string& f : found) message += "\n  " + f;
  if (failed)
    message += "\n" + std::to_string(failed) + " shared librar" + (failed == 1 ? "y" : "ies") +
               " failed to load (`prompthost plugins` says why)";
  message +=
      "\nAdd a folder with --plugin-path DIR or PROMPTHOST_PLUGIN_PATH, or give the .so's path.";
  throw Error(message);
}

std::shared_ptr<PluginLibrary> find_named_plugin(const std::string& method,
                                                 const std::string& where,
                                                 const std::vector<std::string>& extra_dirs) {
  if (!is_method_name(method.c_str())) {
    // The value as JSON: quoted, with control characters and bad UTF-8 made harmless.
    const std::string shown =
        nlohmann::json(method).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    throw Error(where + " is " + shown +
                ", not a method name (lowercase letters, digits and _). A data file names "
                "its method only and never a plugin file: plugins are loaded from the plugin "
                "search path (--plugin-path DIR, PROMPTHOST_PLUGIN_PATH, the build's and the "
                "install's plugin folders)");
  }
  return find_plugin(method, extra_dirs);
}

}  // namespace ph::host
