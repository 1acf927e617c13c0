// Where plugins are found: --plugin-path folders, the folders in PROMPTHOST_PLUGIN_PATH
// (colon-separated), then the build's and the install's plugins folders.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "host/plugin/plugin_library.h"

namespace ph::host {

// The folders searched, in order (duplicates removed): extra (--plugin-path),
// $PROMPTHOST_PLUGIN_PATH, then the build's and the install's plugin folders.
std::vector<std::string> plugin_search_path(const std::vector<std::string>& extra_dirs);

// `name_or_file`: a path (contains '/' or ends in .so) is loaded as is; otherwise a
// method name: the first <dir>/ph_<name>.so on the search path, else the first .so on it
// whose descriptor has that name. Throws ph::Error listing the folders searched and the
// names found when there is no match, or the load error of a ph_<name>.so that fails.
std::shared_ptr<PluginLibrary> find_plugin(const std::string& name_or_file,
                                           const std::vector<std::string>& extra_dirs);

// The plugin of a method named by a data file (an adapter's prompthost_adapter.json, a
// run's trainer_state.json); `where` names the file and the field. A data file never
// chooses a file to load: anything but a method name ([a-z0-9_]+) is refused before any
// library is loaded, and the name is looked up on the search path only (find_plugin).
std::shared_ptr<PluginLibrary> find_named_plugin(const std::string& method,
                                                 const std::string& where,
                                                 const std::vector<std::string>& extra_dirs);

// Every shared library (*.so) on the search path, in search-path order and by file name
// within a folder: loaded (library set) or why not (error set).
struct PluginListing {
  std::string path;
  std::shared_ptr<PluginLibrary> library;
  std::string error;
};
std::vector<PluginListing> list_plugins(const std::vector<std::string>& extra_dirs);

}  // namespace ph::host
