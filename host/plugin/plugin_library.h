// A method plugin loaded with Boost.DLL: the shared library, its checked entry table and
// its descriptor. The library stays loaded while any PluginLibrary shared_ptr lives
// (every MethodInstance holds one), and deinit runs before it unloads.
#pragma once

#include <memory>
#include <string>

#include "prompthost_sdk/plugin_abi.h"

namespace ph::host {

class PluginLibrary {
 public:
  // Loads `path`, finds ph_plugin_entry_v1, checks the ABI major, the table sizes and the
  // descriptor (including its option declarations), and calls init. Throws ph::Error
  // naming the file and the reason (not a shared library, dlopen's error, missing entry
  // symbol, ABI major mismatch, table too small, init failed: its message); the library
  // is unloaded again on failure.
  //
  // While a PluginLibrary of the same file is alive, load returns it rather than a
  // second one, so init and deinit run once per time the library is in memory.
  static std::shared_ptr<PluginLibrary> load(const std::string& path);
  ~PluginLibrary();
  PluginLibrary(const PluginLibrary&) = delete;
  PluginLibrary& operator=(const PluginLibrary&) = delete;

  const std::string& path() const { return path_; }  // as given to load
  const ph_plugin_entry& entry() const { return *entry_; }
  const ph_method_descriptor& descriptor() const { return *entry_->descriptor; }
  // The descriptor's name (checked: non-empty, [a-z0-9_]+).
  const char* name() const { return entry_->descriptor->name; }

 private:
  PluginLibrary() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::string path_;
  std::string key_;  // canonical path, the registry's key
  const ph_plugin_entry* entry_ = nullptr;
};

// A method's name as descriptors, adapters and runs spell it: [a-z0-9_]+.
bool is_method_name(const char* s);

}  // namespace ph::host
