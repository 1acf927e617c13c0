// Loading plugins: a good one, every way a file can fail to be a usable plugin (each
// error names the file and the reason, and the host stays usable), discovery through
// --plugin-path folders and PROMPTHOST_PLUGIN_PATH, and load/unload cycles.
#include <catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "host/plugin/method_instance.h"
#include "host/plugin/plugin_discovery.h"
#include "host/plugin/plugin_library.h"
#include "models/loader/random_model.h"
#include "plugin_test_support.h"
#include "test_support.h"

using namespace ph::host;
using ph::test::contains;
using ph::test::error_of;
using ph::test::test_plugin;

namespace fs = std::filesystem;

namespace {

// After any failure the host must still load and use a good plugin.
void good_plugin_still_loads() {
  auto library = PluginLibrary::load(test_plugin("good_prompt"));
  REQUIRE(library);
  CHECK(std::string(library->name()) == "good_prompt");
}

// Sets an environment variable for one scope.
struct ScopedEnv {
  ScopedEnv(const char* name, const std::string& value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old, had_ = true;
    setenv(name, value.c_str(), 1);
  }
  ~ScopedEnv() {
    if (had_)
      setenv(name_, old_.c_str(), 1);
    else
      unsetenv(name_);
  }
  const char* name_;
  std::string old_;
  bool had_ = false;
};

}  // namespace

TEST_CASE("a good plugin loads with its entry and descriptor") {
  auto library = PluginLibrary::load(test_plugin("good_prompt"));
  CHECK(library->path() == test_plugin("good_prompt"));
  CHECK(library->entry().abi_major == PH_ABI_MAJOR);
  CHECK(library->entry().abi_minor == PH_ABI_MINOR);
  const ph_method_descriptor& d = library->descriptor();
  CHECK(std::string(d.name) == "good_prompt");
  CHECK(std::string(d.peft_type) == "PROMPT_TUNING");
  CHECK(d.n_options == 3);
  // While it is alive, loading the same file (under any spelling) gives the same object.
  const std::string other_spelling =
      std::string(PROMPTHOST_TEST_PLUGIN_DIR) + "/./ph_good_prompt.so";
  CHECK(PluginLibrary::load(other_spelling) == library);

  // A plugin written against the C ABI alone loads too.
  auto raw = PluginLibrary::load(test_plugin("raw_prompt"));
  CHECK(std::string(raw->name()) == "raw_prompt");
}

TEST_CASE("every broken plugin is rejected with the file and the reason") {
  struct Case {
    const char* plugin;
    std::vector<std::string> reasons;  // each must appear in the message
  };
  const std::vector<Case> cases = {
      {"does_not_exist", {"no such file"}},
      {"not_elf", {"is not a shared library (no ELF header)"}},
      {"unresolved",
       {"cannot be loaded", "undefined symbol", "prompthost_test_symbol_nobody_defines"}},
      {"missing_symbol", {"not a PromptHost ABI v1 plugin", "ph_plugin_entry_v1"}},
      {"entry_v2", {"not a PromptHost ABI v1 plugin", "ph_plugin_entry_v2", "plugin ABI 2"}},
      {"null_entry", {"ph_plugin_entry_v1() returned NULL"}},
      {"wrong_abi", {"built for plugin ABI 2.", "abi_major 2", "this host speaks ABI 1.2"}},
      {"too_new",
       {"needs ABI 1." + std::to_string(PH_ABI_MINOR + 1) + ", this host speaks 1." +
        std::to_string(PH_ABI_MINOR)}},
      {"small_table", {"entry table is too small", "struct_size 24"}},
      {"null_descriptor", {"NULL descriptor"}},
      {"small_descriptor", {"descriptor is too small", "struct_size 16"}},
      {"no_name", {"descriptor has no name"}},
      {"no_peft_type", {"no_peft_type", "has no peft_type"}},
      {"small_option", {"option #0", "struct_size is 8"}},
      {"bad_default_json",
       {"plugin bad_default_json", "option num_virtual_tokens", "'twenty' is not valid JSON"}},
      {"bad_default_range",
       {"plugin bad_default_range", "option num_virtual_tokens",
        "default value 0 does not satisfy its own declaration", "[1, 16]"}},
      {"init_fails", {"init failed", "init_fails refuses to start: it needs a GPU"}},
  };
  for (const Case& c : cases) {
    const std::string file = test_plugin(c.plugin);
    const std::string message = error_of([&] { PluginLibrary::load(file); });
    INFO(message);
    CHECK(message.rfind(file + ": ", 0) == 0);  // starts with the file
    for (const std::string& reason : c.reasons) CHECK(contains(message, reason));
    good_plugin_still_loads();
    // A rejected library is unloaded again.
    if (fs::exists(file) && c.plugin != std::string("not_elf"))
      CHECK_FALSE(ph::test::is_mapped(file));
  }
  CHECK(contains(error_of([] { PluginLibrary::load(PROMPTHOST_TEST_PLUGIN_DIR); }),
                 "is a folder, not a shared library"));
  // An executable (PIE, so ELF type "shared object"): dlopen's own reason comes through.
  CHECK(contains(error_of([] { PluginLibrary::load("/bin/true"); }),
                 "/bin/true: cannot be loaded: "));
  // An ELF header of a relocatable object (.o).
  const std::string object = ph::test::temp_dir("object_file") + "/ph_object.so";
  {
    std::ofstream out(object, std::ios::binary);
    const unsigned char header[18] = {0x7f, 'E', 'L', 'F', 2, 1, 1, 0, 0,
                                      0,    0,   0,   0,   0, 0, 0, 1, 0};
    out.write(reinterpret_cast<const char*>(header), sizeof header);
  }
  CHECK(error_of([&] { PluginLibrary::load(object); }) ==
        object + ": is an ELF file but a relocatable object (.o), not a shared library");
}

TEST_CASE("the search path: --plugin-path, then PROMPTHOST_PLUGIN_PATH, then build and install") {
  ScopedEnv env("PROMPTHOST_PLUGIN_PATH", "/env/a::/env/b:/first");
  const auto dirs = plugin_search_path({"/first", "/second"});
  REQUIRE(dirs.size() == 6);
  CHECK(dirs[0] == "/first");
  CHECK(dirs[1] == "/second");
  CHECK(dirs[2] == "/env/a");  // empty entries skipped, duplicates kept once
  CHECK(dirs[3] == "/env/b");
  CHECK(dirs[4] == std::string(PROMPTHOST_BINARY_DIR) + "/plugins");
  CHECK(contains(dirs[5], "lib/prompthost/plugins"));
}

TEST_CASE("find_plugin by name through --plugin-path folders and PROMPTHOST_PLUGIN_PATH") {
  // By <dir>/ph_<name>.so in an explicit folder.
  auto by_dir = find_plugin("good_prompt", {PROMPTHOST_TEST_PLUGIN_DIR});
  CHECK(by_dir->path() == test_plugin("good_prompt"));

  // The same through the environment.
  {
    ScopedEnv env("PROMPTHOST_PLUGIN_PATH", std::string("/nowhere:") + PROMPTHOST_TEST_PLUGIN_DIR);
    CHECK(std::string(find_plugin("raw_prompt", {})->name()) == "raw_prompt");
  }
  {
    ScopedEnv env("PROMPTHOST_PLUGIN_PATH", "");
    CHECK_THROWS_AS(find_plugin("raw_prompt", {}), ph::Error);
  }

  // By descriptor name, in a file named otherwise, next to a broken library.
  const std::string dir = ph::test::temp_dir("find_plugin_scan");
  fs::copy_file(test_plugin("good_prompt"), dir + "/renamed.so");
  fs::copy_file(test_plugin("not_elf"), dir + "/broken.so");
  auto scanned = find_plugin("good_prompt", {dir});
  CHECK(scanned->path() == dir + "/renamed.so");

  // By path.
  CHECK(find_plugin(test_plugin("raw_prompt"), {})->path() == test_plugin("raw_prompt"));
  CHECK(contains(error_of([] { find_plugin("./nothing_here.so", {}); }), "no such file"));

  // A ph_<name>.so that fails to load is reported, not skipped.
  CHECK(contains(error_of([] { find_plugin("init_fails", {PROMPTHOST_TEST_PLUGIN_DIR}); }),
                 "init failed"));
  good_plugin_still_loads();
}

TEST_CASE("an unknown name lists the folders searched and the plugins found") {
  const std::string dir = ph::test::temp_dir("find_plugin_unknown");
  fs::copy_file(test_plugin("raw_prompt"), dir + "/ph_raw_prompt.so");
  fs::copy_file(test_plugin("wrong_abi"), dir + "/ph_wrong_abi.so");
  const std::string message = error_of([&] { find_plugin("prefix_tunin", {dir, "/no/such/dir"}); });
  INFO(message);
  CHECK(contains(message, "no plugin named \"prefix_tunin\""));
  CHECK(contains(message, dir));
  CHECK(contains(message, "/no/such/dir (missing)"));
  CHECK(contains(message, "raw_prompt (" + dir + "/ph_raw_prompt.so)"));
  CHECK(contains(message, "failed to load"));
  CHECK(contains(message, "--plugin-path"));
}

TEST_CASE("list_plugins reports every .so: loaded, or why not") {
  const auto listings = list_plugins({PROMPTHOST_TEST_PLUGIN_DIR});
  std::map<std::string, const PluginListing*> by_file;
  for (const auto& l : listings) by_file[fs::path(l.path).filename().string()] = &l;
  for (const char* good : {"good_prompt", "wrong_gradient", "throws", "raw_prompt", "crashes"}) {
    INFO(good);
    REQUIRE(by_file.count(std::string("ph_") + good + ".so"));
    const PluginListing& l = *by_file[std::string("ph_") + good + ".so"];
    REQUIRE(l.library);
    CHECK(std::string(l.library->name()) == good);
    CHECK(l.error.empty());
  }
  for (const char* bad : {"wrong_abi", "init_fails", "missing_symbol", "not_elf", "small_table"}) {
    INFO(bad);
    REQUIRE(by_file.count(std::string("ph_") + bad + ".so"));
    const PluginListing& l = *by_file[std::string("ph_") + bad + ".so"];
    CHECK_FALSE(l.library);
    CHECK(contains(l.error, l.path));
  }
}

TEST_CASE("load and unload 50 times: deinit runs, the library leaves memory") {
  const ph::Model model = ph::make_random_model(ph::test::tiny_llama_config(), 1);
  ModelHost model_host(model, nullptr);
  const std::string file = test_plugin("good_prompt");
  REQUIRE_FALSE(ph::test::is_mapped(file));
  for (int i = 0; i < 50; ++i) {
    auto library = PluginLibrary::load(file);
    REQUIRE(ph::test::is_mapped(file));
    const auto options = nlohmann::json{
        {"num_virtual_tokens", 2 + i % 3}, {"per_example", false}, {"num_prefix_tokens", 0}};
    {
      MethodInstance a(library, model_host, options, (uint64_t)i);
      MethodInstance b(library, model_host, options, (uint64_t)i + 1);
      CHECK(a.forward(1, {}, true).virtual_tokens.shape(1) == (size_t)(2 + i % 3));
    }
    // An instance keeps the library loaded after the caller's handle is gone.
    auto survivor = std::make_unique<MethodInstance>(library, model_host, options, 7);
    library.reset();
    REQUIRE(ph::test::is_mapped(file));
    CHECK(survivor->parameter_count_total() == (size_t)(2 + i % 3) * 16);
    survivor.reset();
    REQUIRE_FALSE(ph::test::is_mapped(file));
  }
}
