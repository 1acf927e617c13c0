// The adapter_config.json PromptHost writes is one the real PEFT loads: the keys PEFT
// 0.20.0 writes for each method (checked against files PEFT 0.17.1 and 0.20.0 wrote,
// tests/fixtures/peft/), and none of the values PEFT refuses at load (peft-spec §2.1,
// §2.4): TEXT without a tokenizer, or a source initialisation whose file PEFT must read
// again.
#include <catch.hpp>

#include <filesystem>
#include <fstream>
#include <set>

#include <nlohmann/json.hpp>

#include "host/trainer/adapter_files.h"
#include "host/trainer/run_files.h"
#include "host/trainer/trainer.h"
#include "test_support.h"

using namespace ph;
using namespace ph::trainer;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

json read_file(const std::string& path) {
  return json::parse(std::ifstream(path));
}

std::set<std::string> keys_of(const json& object) {
  std::set<std::string> keys;
  for (auto it = object.begin(); it != object.end(); ++it) keys.insert(it.key());
  return keys;
}

std::string peft_fixture(const std::string& release, const std::string& name) {
  return test::fixtures_dir() + "/peft/" + release + "/" + name + "/adapter_config.json";
}

// The first n lines of a demo task's training data, as a data file of its own.
std::string demo_data(const std::string& task, int n) {
  const std::string path = test::temp_dir("peft_files_data_" + task) + "/train.jsonl";
  std::ifstream in(test::source_path("models/demo/tasks/" + task + "/train.jsonl"));
  std::ofstream out(path);
  std::string line;
  for (int i = 0; i < n && std::getline(in, line); ++i) out << line << "\n";
  return path;
}

// One step that changes nothing: enough to write the adapter folder.
TrainConfig one_step(const std::string& plugin, const std::string& out,
                     std::vector<std::string> set) {
  TrainConfig c;
  c.plugin = plugin;
  c.model = test::source_path("models/demo/hf");
  c.data = demo_data("topic", 4);
  c.output_dir = out;
  c.max_steps = 1;
  c.batch_size = 4;
  c.lr = 0.0;
  c.seed = 3;
  c.threads = 1;
  c.quiet = true;
  c.eval_generate = false;
  c.set = std::move(set);
  c.set.push_back("num_virtual_tokens=3");
  return c;
}

// Why PEFT's from_pretrained would refuse this adapter_config.json before reading a tensor,
// or "" (peft-spec §2.1: TEXT needs a truthy tokenizer_name_or_path, in every release;
// §2.4: a source initialisation reads prompt_tuning_init_state_dict_path at every load,
// raising when it is null, IsADirectoryError on a folder, and failing on a missing file).
std::string peft_refuses(const json& cfg) {
  const std::string init = cfg.value("prompt_tuning_init", "");
  if (init == "TEXT") {
    const json& tokenizer = cfg.at("tokenizer_name_or_path");
    if (!tokenizer.is_string() || tokenizer.get<std::string>().empty())
      return "TEXT without tokenizer_name_or_path";
  }
  if (init == "AVERAGE_SOURCE_TASKS" || init == "EXACT_SOURCE_TASK" ||
      init == "ONLY_SOURCE_SHARED") {
    const json& path = cfg.at("prompt_tuning_init_state_dict_path");
    if (!path.is_string()) return init + " without prompt_tuning_init_state_dict_path";
    if (!fs::is_regular_file(path.get<std::string>()))
      return init + " from " + path.dump() + ", which is not a file here";
  }
  return "";
}

}  // namespace

TEST_CASE("peft: every method writes the keys PEFT 0.20.0 writes, and says so", "[peft]") {
  // PEFT 0.17.1's keys (real files), plus what 0.18 and 0.19 added (peft-spec §3)
  const std::set<std::string> since_0_18 = {"peft_version"}, since_0_19 = {"init_weights"};
  struct Case {
    const char* plugin;
    std::vector<std::string> set;
    const char* fixture;
    bool prefix;
  };
  const Case cases[] = {
      {"prompt_tuning", {}, "prompt_tuning", false},
      {"multitask_prompt_tuning", {}, "multitask_prompt_tuning", false},
      {"prefix_tuning", {}, "prefix_tuning", true},
      {"prefix_tuning", {"prefix_projection=true"}, "prefix_tuning_projection", true},
      {"p_tuning", {}, "p_tuning_mlp", false},
      {"p_tuning", {"encoder_reparameterization_type=LSTM"}, "p_tuning_lstm", false}};
  const json peft_0_20 = read_file(peft_fixture("0.20.0", "cartridge"));
  const std::string common_0_20_only = "num_frozen_tokens";  // CARTRIDGE's own key
  for (const Case& c : cases) {
    INFO(c.fixture);
    const std::string out = test::temp_dir(std::string("peft_files_keys_") + c.fixture);
    train(one_step(c.plugin, out, c.set));
    const json cfg = read_file(out + "/" + kAdapterConfigFile);
    std::set<std::string> expected = keys_of(read_file(peft_fixture("0.17.1", c.fixture)));
    expected.insert(since_0_18.begin(), since_0_18.end());
    if (c.prefix) expected.insert(since_0_19.begin(), since_0_19.end());
    CHECK(keys_of(cfg) == expected);
    for (const std::string& key : keys_of(peft_0_20))
      if (key != common_0_20_only) CHECK(cfg.contains(key));
    CHECK(cfg["peft_version"] == peft_0_20["peft_version"]);
    CHECK(cfg["peft_version"] == kPeftLayoutVersion);
    CHECK(peft_refuses(cfg).empty());
  }
}

TEST_CASE("peft: TEXT initialisation names the base model as the tokenizer PEFT needs", "[peft]") {
  for (const char* plugin : {"prompt_tuning", "multitask_prompt_tuning"}) {
    INFO(plugin);
    const std::string out = test::temp_dir(std::string("peft_files_text_") + plugin);
    const TrainConfig c =
        one_step(plugin, out, {"prompt_tuning_init=TEXT", "prompt_tuning_init_text=Topic:"});
    train(c);
    const json cfg = read_file(out + "/" + kAdapterConfigFile);
    CHECK(peft_refuses(cfg).empty());
    CHECK(cfg["tokenizer_name_or_path"] == c.model);
    CHECK(cfg["base_model_name_or_path"] == c.model);
    CHECK(cfg["prompt_tuning_init"] == "TEXT");
    // PromptHost's own record keeps the option as given
    CHECK(read_file(out + "/" + kAdapterInfoFile)["options"]["tokenizer_name_or_path"].is_null());

    // one the user names is kept
    const std::string named = test::temp_dir(std::string("peft_files_text_named_") + plugin);
    TrainConfig n =
        one_step(plugin, named,
                 {"prompt_tuning_init=TEXT",
                  "prompt_tuning_init_text=Topic:", "tokenizer_name_or_path=org/tokenizer"});
    train(n);
    CHECK(read_file(named + "/" + kAdapterConfigFile)["tokenizer_name_or_path"] == "org/tokenizer");
  }
}

TEST_CASE("peft: a multitask target from a source folder loads in PEFT without the source",
          "[peft]") {
  const std::string work = test::temp_dir("peft_files_multitask");
  const std::string source = work + "/source";
  TrainConfig s = one_step("multitask_prompt_tuning", source, {"num_tasks=4"});
  s.data = demo_data("multitask-source", 8);
  train(s);
  for (const char* init : {"AVERAGE_SOURCE_TASKS", "EXACT_SOURCE_TASK", "ONLY_SOURCE_SHARED"}) {
    INFO(init);
    const std::string target = work + "/target-" + init;
    TrainConfig t = one_step("multitask_prompt_tuning", target,
                             {std::string("prompt_tuning_init=") + init,
                              "prompt_tuning_init_state_dict_path=" + source});
    t.data = demo_data("multitask-target", 4);
    train(t);
    const json cfg = read_file(target + "/" + kAdapterConfigFile);
    // the source (a folder: PEFT's torch.load fails on it) is not named to PEFT
    CHECK(peft_refuses(cfg).empty());
    CHECK(cfg["prompt_tuning_init"] == "RANDOM");
    CHECK(cfg["prompt_tuning_init_state_dict_path"].is_null());
    // PromptHost's record keeps what was asked for
    const json options = read_file(target + "/" + kAdapterInfoFile)["options"];
    CHECK(options["prompt_tuning_init"] == init);
    CHECK(options["prompt_tuning_init_state_dict_path"] == source);
  }
}
