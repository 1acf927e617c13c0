// A data file never makes the host load a library. An adapter folder's
// prompthost_adapter.json and a run's trainer_state.json name a method; a path there (or
// a folder to search, in a run's file) would let whoever made the folder run code in
// `prompthost generate --adapter` or `train --resume`. The library used to show it is
// tests/plugins/evil_plugin.c: its constructor writes the file $EVIL_MARKER, so the
// marker's absence proves it was never loaded.
#include <catch.hpp>

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "host/plugin/method_instance.h"
#include "host/plugin/plugin_discovery.h"
#include "host/trainer/adapter_files.h"
#include "host/trainer/adapter_loading.h"
#include "host/trainer/run_files.h"
#include "host/trainer/trainer.h"
#include "models/loader/random_model.h"
#include "plugin_test_support.h"
#include "test_support.h"

#ifndef PROMPTHOST_EVIL_PLUGIN
#error "PROMPTHOST_EVIL_PLUGIN must name the built evil_plugin.so (tests/CMakeLists.txt)"
#endif

using namespace ph;
using ph::test::contains;
using ph::test::error_of;
namespace fs = std::filesystem;

namespace {

// A fresh marker path, exported as $EVIL_MARKER; the library writes it when loaded.
std::string arm_marker(const std::string& dir) {
  const std::string marker = dir + "/evil-code-ran";
  fs::remove(marker);
  setenv("EVIL_MARKER", marker.c_str(), 1);
  return marker;
}

void write_json(const std::string& path, const nlohmann::json& j) {
  std::ofstream(path) << j.dump(2);
}

// An adapter folder whose prompthost_adapter.json names `plugin`.
std::string adapter_naming(const std::string& dir, const std::string& plugin) {
  fs::create_directories(dir);
  write_json(dir + "/" + trainer::kAdapterConfigFile, {{"peft_type", "PROMPT_TUNING"}});
  write_json(dir + "/" + trainer::kAdapterInfoFile, {{"plugin", plugin}});
  return dir;
}

// Restores the working directory when the scope ends.
struct InFolder {
  explicit InFolder(const std::string& dir) : previous(fs::current_path()) {
    fs::current_path(dir);
  }
  ~InFolder() { fs::current_path(previous); }
  fs::path previous;
};

}  // namespace

TEST_CASE("an adapter naming a library file is refused before anything is loaded") {
  const std::string dir = test::temp_dir("adapter_names_a_file");
  const Model model = make_random_model(test::tiny_llama_config(), 1);
  host::ModelHost model_host(model, nullptr);
  const std::string evil = PROMPTHOST_EVIL_PLUGIN;
  REQUIRE(fs::exists(evil));
  // A bare file name loads from the working folder: put the library there.
  const std::string cwd_dir = dir + "/cwd";
  fs::create_directories(cwd_dir);
  fs::copy_file(evil, cwd_dir + "/evil_plugin.so");
  InFolder in_cwd(cwd_dir);

  const std::string relative = fs::relative(evil, fs::current_path()).string();
  for (const std::string& named : {evil, relative, std::string("evil_plugin.so"),
                                   std::string("./evil_plugin.so"), std::string("evil/../x")}) {
    INFO(named);
    const std::string marker = arm_marker(dir);
    const std::string adapter = adapter_naming(dir + "/adapter", named);
    const std::string message =
        error_of([&] { trainer::open_adapter(adapter, model_host, {PROMPTHOST_TEST_PLUGIN_DIR}); });
    CHECK(contains(message, adapter + "/prompthost_adapter.json: field \"plugin\" is \"" + named));
    CHECK(contains(message, "not a method name"));
    CHECK(contains(message, "--plugin-path"));
    CHECK_FALSE(fs::exists(marker));
  }
}

TEST_CASE("an adapter's method name is looked up on the search path only") {
  const std::string dir = test::temp_dir("adapter_names_a_method");
  const std::string marker = arm_marker(dir);
  // A plugin by name is found in the given folders; the adapter's own folder is not one.
  const std::string adapter = adapter_naming(dir + "/adapter", "good_prompt");
  fs::copy_file(PROMPTHOST_EVIL_PLUGIN, adapter + "/ph_good_prompt.so");
  const auto library = host::find_named_plugin("good_prompt", "test", {PROMPTHOST_TEST_PLUGIN_DIR});
  CHECK(std::string(library->name()) == "good_prompt");
  CHECK(library->path() == test::test_plugin("good_prompt"));
  CHECK_FALSE(fs::exists(marker));
  // Control characters in a hostile value are escaped in the message.
  CHECK(contains(error_of([] { host::find_named_plugin("a\nb\x1b", "F: field \"plugin\"", {}); }),
                 "F: field \"plugin\" is \"a\\nb\\u001b\", not a method name"));
}

namespace {

// Trains `plugin` on the demo model, stopping at step 1 of 2; returns the run's folder.
std::string stopped_run(const std::string& dir, const std::string& plugin) {
  trainer::TrainConfig c;
  c.plugin = plugin;
  c.model = test::source_path("models/demo/hf");
  c.data = test::source_path("models/demo/tasks/topic/test.jsonl");
  c.output_dir = dir + "/run";
  c.max_steps = 2;
  c.stop_after = 1;
  c.batch_size = 4;
  c.threads = 1;
  c.quiet = true;
  trainer::train(c);
  return c.output_dir;
}

// Rewrites fields of the run's trainer_state.json "config".
void edit_run_config(const std::string& run, const nlohmann::json& fields) {
  const std::string path = run + "/" + trainer::kTrainerStateFile;
  nlohmann::json state = trainer::read_json(path);
  for (const auto& [key, value] : fields.items()) state["config"][key] = value;
  write_json(path, state);
}

trainer::TrainConfig resume_settings() {
  trainer::TrainConfig given;
  given.threads = 1;
  given.quiet = true;
  return given;
}

}  // namespace

TEST_CASE("a run records its method by name, and --resume never loads a file the run names") {
  const std::string dir = test::temp_dir("resume_names_a_file");
  const std::string run = stopped_run(dir, "prompt_tuning");  // the build's plugin
  const std::string state_file = run + "/" + trainer::kTrainerStateFile;
  CHECK(trainer::read_json(state_file)["config"]["plugin"] == "prompt_tuning");

  SECTION("a library path in config.plugin") {
    const std::string marker = arm_marker(dir);
    edit_run_config(run, {{"plugin", PROMPTHOST_EVIL_PLUGIN}});
    const std::string message = error_of([&] { trainer::train(resume_settings(), run); });
    CHECK(contains(message, state_file + ": field \"config.plugin\" is \"" +
                                std::string(PROMPTHOST_EVIL_PLUGIN) + "\", not a method name"));
    CHECK_FALSE(fs::exists(marker));
  }
  SECTION("a folder of the run's in config.plugin_paths holding a library of the method's name") {
    const std::string marker = arm_marker(dir);
    const std::string planted = dir + "/planted";
    fs::create_directories(planted);
    fs::copy_file(PROMPTHOST_EVIL_PLUGIN, planted + "/ph_prompt_tuning.so");
    edit_run_config(run, {{"plugin_paths", {planted}}});
    const trainer::TrainSummary resumed = trainer::train(resume_settings(), run);
    CHECK(resumed.steps == 2);  // with the build's prompt_tuning
    CHECK_FALSE(fs::exists(marker));
  }
  SECTION("where the plugin is comes from the command line: --plugin-path or --plugin FILE") {
    edit_run_config(run,
                    {{"plugin", "good_prompt"}, {"plugin_paths", {PROMPTHOST_TEST_PLUGIN_DIR}}});
    CHECK(contains(error_of([&] { trainer::train(resume_settings(), run); }),
                   "no plugin named \"good_prompt\""));
    trainer::TrainConfig given = resume_settings();
    given.plugin = test::test_plugin("raw_prompt");
    CHECK(contains(error_of([&] { trainer::train(given, run); }),
                   state_file + ": the run trains method \"good_prompt\", but --plugin " +
                       given.plugin + " is \"raw_prompt\""));
  }
}

TEST_CASE("--resume finds the run's method through the command line's --plugin-path") {
  // A plugin file given by the user.
  const std::string run = stopped_run(test::temp_dir("resume_plugin_path"),
                                      test::test_plugin("good_prompt"));
  const std::string state_file = run + "/" + trainer::kTrainerStateFile;
  CHECK(trainer::read_json(state_file)["config"]["plugin"] == "good_prompt");
  trainer::TrainConfig given = resume_settings();
  given.plugin_paths = {PROMPTHOST_TEST_PLUGIN_DIR};
  CHECK(trainer::train(given, run).steps == 2);
}
