// Loading a plugin: every check the ABI allows before trusting a table, in the order
// that lets each one read only what the previous ones proved is there.
#include "host/plugin/plugin_library.h"

#include <dlfcn.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>

#include <boost/dll/shared_library.hpp>

#include "host/plugin/abi_v1_0.h"
#include "host/plugin/method_options.h"
#include "host/plugin/plugin_call.h"
#include "host/plugin/status.h"
#include "host/plugin/task_types.h"
#include "models/common/error.h"

namespace ph::host {

namespace fs = std::filesystem;

struct PluginLibrary::Impl {
  boost::dll::shared_library library;
  bool initialized = false;
};

namespace {

// Libraries alive in this process by canonical path. Leaked on purpose: a PluginLibrary
// held by a static may be destroyed after any static registry would be.
struct Registry {
  std::recursive_mutex mutex;  // serialises load and unload (init/deinit are [main-thread])
  std::map<std::string, std::weak_ptr<PluginLibrary>> libraries;
};
Registry& registry() {
  static Registry* r = new Registry;
  return *r;
}

[[noreturn]] void fail(const std::string& path, const std::string& reason) {
  throw Error(path + ": " + reason);
}

// Rejects what dlopen would reject with a less helpful message: no file, a folder, a
// file that is not ELF, an ELF file that is not a shared object.
void check_file(const std::string& path) {
  std::error_code ec;
  const fs::file_status status = fs::status(path, ec);
  if (ec || !fs::exists(status)) fail(path, "no such file");
  if (fs::is_directory(status)) fail(path, "is a folder, not a shared library");
  unsigned char header[18] = {};
  std::ifstream in(path, std::ios::binary);
  in.read(reinterpret_cast<char*>(header), sizeof header);
  if (!in || header[0] != 0x7f || header[1] != 'E' || header[2] != 'L' || header[3] != 'F')
    fail(path, "is not a shared library (no ELF header)");
  const int data_encoding = header[5];  // 1: little-endian
  if (data_encoding == 1) {
    const int type = header[16] | (header[17] << 8);
    constexpr int kSharedObject = 3;  // ET_DYN
    if (type != kSharedObject) {
      const char* kind = type == 1   ? "a relocatable object (.o)"
                         : type == 2 ? "an executable"
                                     : "not a shared object";
      fail(path, std::string("is an ELF file but ") + kind + ", not a shared library");
    }
  }
}

// "not a v1 plugin", and if it is one of another ABI major, which.
std::string missing_entry_reason(const boost::dll::shared_library& library) {
  std::string reason = std::string("is not a PromptHost ABI v1 plugin: it does not export ") +
                       PH_PLUGIN_ENTRY_SYMBOL;
  for (int major = 0; major < 100; ++major) {
    if (major == PH_ABI_MAJOR) continue;
    const std::string other = "ph_plugin_entry_v" + std::to_string(major);
    if (library.has(other))
      return reason + " but " + other + ", the entry of plugin ABI " + std::to_string(major) +
             " (this host speaks ABI " + std::to_string(PH_ABI_MAJOR) + ")";
  }
  return reason + " (built without prompthost_add_plugin / PH_EXPORT_METHOD?)";
}

// The entry table and the descriptor, checked field by field before anything else is read.
void check_entry(const std::string& path, const ph_plugin_entry* entry) {
  if (!entry) fail(path, std::string(PH_PLUGIN_ENTRY_SYMBOL) + "() returned NULL");
  constexpr uint32_t kVersionEnd = offsetof(ph_plugin_entry, abi_minor) + sizeof(uint16_t);
  if (entry->struct_size < kVersionEnd)
    fail(path, "its entry table's struct_size is " + std::to_string(entry->struct_size) +
                   ", too small to hold even the ABI version");
  if (entry->abi_major != PH_ABI_MAJOR)
    fail(path, "was built for plugin ABI " + std::to_string(entry->abi_major) + "." +
                   std::to_string(entry->abi_minor) + " (abi_major " +
                   std::to_string(entry->abi_major) + "), this host speaks ABI " +
                   std::to_string(PH_ABI_MAJOR) + "." + std::to_string(PH_ABI_MINOR) +
                   ": rebuild the plugin against this host's SDK");
  // A newer minor may rely on fields this host never fills; its own init should refuse,
  // but a plugin that does not check must not be trusted with an older table either.
  if (entry->abi_minor > PH_ABI_MINOR)
    fail(path, "needs ABI " + std::to_string(entry->abi_major) + "." +
                   std::to_string(entry->abi_minor) + ", this host speaks " +
                   std::to_string(PH_ABI_MAJOR) + "." + std::to_string(PH_ABI_MINOR) +
                   ": use a newer PromptHost or rebuild the plugin against this host's SDK");
  if (entry->struct_size < abi_1_0::kEntrySize)
    fail(path, "its entry table is too small: struct_size " + std::to_string(entry->struct_size) +
                   " < " + std::to_string(abi_1_0::kEntrySize) +
                   " bytes (ABI 1.0's ph_plugin_entry)");
  if (!entry->init || !entry->deinit || !entry->create)
    fail(path, std::string("its entry table has a NULL ") + (!entry->init     ? "init"
                                                             : !entry->deinit ? "deinit"
                                                                              : "create"));

  const ph_method_descriptor* d = entry->descriptor;
  if (!d) fail(path, "its entry table has a NULL descriptor");
  if (d->struct_size < abi_1_0::kDescriptorSize)
    fail(path, "its descriptor is too small: struct_size " + std::to_string(d->struct_size) +
                   " < " + std::to_string(abi_1_0::kDescriptorSize) +
                   " bytes (ABI 1.0's ph_method_descriptor)");
  if (!d->name || !*d->name) fail(path, "its descriptor has no name");
  if (!is_method_name(d->name))
    fail(path, std::string("its descriptor name \"") + d->name +
                   "\" is not a method name (lowercase letters, digits and _)");
  if (!d->peft_type || !*d->peft_type)
    fail(path, std::string("its descriptor (") + d->name + ") has no peft_type");
  try {
    check_option_declarations(*d);
    check_task_type_declaration(*d);
  } catch (const Error& e) {
    fail(path, e.what());
  }
}

}  // namespace

bool is_method_name(const char* s) {
  if (!s || !*s) return false;
  for (; *s; ++s)
    if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_')) return false;
  return true;
}

std::shared_ptr<PluginLibrary> PluginLibrary::load(const std::string& path) {
  check_file(path);
  // The registry's key and what dlopen gets: the same file under any spelling of its path.
  std::error_code ec;
  std::string key = fs::canonical(path, ec).string();
  if (ec) key = fs::absolute(path).string();

  Registry& reg = registry();
  std::lock_guard<std::recursive_mutex> lock(reg.mutex);
  if (auto it = reg.libraries.find(key); it != reg.libraries.end())
    if (auto alive = it->second.lock()) return alive;

  auto impl = std::make_unique<Impl>();
  // rtld_now: unresolved symbols fail here, not at the first call. rtld_local: the
  // plugin's symbols never satisfy another library's. Never deep-bind (ASan refuses it).
  std::error_code load_error;
  dlerror();  // clear any earlier message
  // dlopen runs the library's constructors: plugin code, before any table exists.
  in_plugin_call(path.c_str(), "dlopen", [&] {
    impl->library.load(key, boost::dll::load_mode::rtld_now | boost::dll::load_mode::rtld_local,
                       load_error);
  });
  if (load_error || !impl->library.is_loaded()) {
    const char* message = dlerror();  // Boost keeps only an errc; dlopen's text says why
    fail(path, std::string("cannot be loaded: ") + (message ? message : load_error.message()));
  }
  if (!impl->library.has(PH_PLUGIN_ENTRY_SYMBOL)) fail(path, missing_entry_reason(impl->library));
  auto& entry_fn = impl->library.get<const ph_plugin_entry*()>(PH_PLUGIN_ENTRY_SYMBOL);
  const ph_plugin_entry* entry = in_plugin_call(path.c_str(), PH_PLUGIN_ENTRY_SYMBOL, entry_fn);
  check_entry(path, entry);

  if (ph_status* status = in_plugin_call(entry->descriptor->name, "init",
                                         [&] { return entry->init(base_host()); })) {
    std::string message = status_message(status);
    base_host()->status_release(base_host(), status);
    fail(path, "init failed: " + message);
  }
  impl->initialized = true;

  std::shared_ptr<PluginLibrary> library(new PluginLibrary());
  library->impl_ = std::move(impl);
  library->path_ = path;
  library->key_ = key;
  library->entry_ = entry;
  reg.libraries[key] = library;
  return library;
}

PluginLibrary::~PluginLibrary() {
  Registry& reg = registry();
  std::lock_guard<std::recursive_mutex> lock(reg.mutex);
  if (impl_ && impl_->initialized) in_plugin_call(name(), "deinit", entry_->deinit);
  if (impl_) in_plugin_call(path_.c_str(), "dlclose", [&] { impl_->library.unload(); });
  // Another load of the same file may have registered a new object meanwhile.
  if (auto it = reg.libraries.find(key_); it != reg.libraries.end() && it->second.expired())
    reg.libraries.erase(it);
}

}  // namespace ph::host
