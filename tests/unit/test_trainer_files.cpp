// A damaged run or adapter file (a missing field, a wrong type, a value out of range) is
// an error naming the file and the field, never a bare JSON library message or a crash.
#include <catch.hpp>

#include <functional>
#include <string>

#include "host/trainer/adapter_files.h"
#include "host/trainer/run_files.h"
#include "host/trainer/trainer.h"
#include "models/common/error.h"
#include "test_support.h"
#include "trainer_test_support.h"

using namespace ph;
using namespace ph::trainer;
using Catch::Contains;
using json = nlohmann::json;

namespace {

// The message of `read` after `edit` changed the JSON file at `path` (restored after).
std::string error_after_edit(const std::string& path, const std::function<void(json&)>& edit,
                             const std::function<void()>& read) {
  const std::string original = test::read_bytes(path);
  json j = json::parse(original);
  edit(j);
  test::write_bytes(path, j.dump());
  const std::string message = test::error_message(read);
  test::write_bytes(path, original);
  return message;
}

// The message names the file and says what is wrong with which field.
void check_names(const std::string& path, const std::string& message, const std::string& field) {
  INFO(message);
  CHECK_THAT(message, Contains(path));
  CHECK_THAT(message, Contains(field));
}

}  // namespace

TEST_CASE("errors in trainer_state.json name the file and the field", "[trainer_files]") {
  const std::string run = test::temp_dir("trainer_files_state") + "/run";
  TrainConfig first = test::small_run(run);
  first.stop_after = 3;
  train(first);
  const std::string path = run + "/" + kTrainerStateFile;
  TrainConfig resume;
  resume.threads = 1;
  resume.quiet = true;
  auto error_of = [&](const std::function<void(json&)>& edit) {
    return error_after_edit(path, edit, [&] { train(resume, run); });
  };
  check_names(path, error_of([](json& j) { j["loop"]["step"] = "three"; }),
              "\"loop.step\" must be an integer");
  check_names(path, error_of([](json& j) { j["config"].erase("lr"); }),
              "missing field \"config.lr\"");
  check_names(path, error_of([](json& j) { j["config"]["seed"] = -1; }), "\"config.seed\"");
  check_names(path, error_of([](json& j) { j["config"]["batch_size"] = 1e12; }),
              "\"config.batch_size\"");
  check_names(path, error_of([](json& j) { j["config"]["batch_size"] = 0; }),
              "--batch-size must be >= 1");
  check_names(path, error_of([](json& j) { j["config"]["plugin_paths"] = {1}; }),
              "\"config.plugin_paths.0\"");
  check_names(path, error_of([](json& j) { j["config"] = "settings"; }),
              "\"config\" must be an object");
  check_names(path, error_of([](json& j) { j["loop"]["batch_index"] = -5; }),
              "\"loop.batch_index\"");
  check_names(path, error_of([](json& j) { j["loop"]["step"] = 99; }),
              "\"loop.step\" = 99 is out of range");
  check_names(path, error_of([](json& j) { j["loop"]["metrics"][0].erase("step"); }),
              "missing field \"loop.metrics.0.step\"");
  check_names(path, error_of([](json& j) { j["loop"]["metrics"][1]["loss"] = "low"; }),
              "\"loop.metrics.1.loss\" must be a number");
  check_names(path, error_of([](json& j) {
                j["task_names"] = {1, 2};
              }),
              "\"task_names.0\" must be a string");
  check_names(path, error_of([](json& j) { j.erase("options"); }), "missing field \"options\"");
  check_names(path, error_of([](json& j) { j["options"]["num_virtual_tokens"] = 0; }),
              "num_virtual_tokens");
  check_names(path, error_of([](json& j) { j = json::array(); }), "must be an object");
}

TEST_CASE("errors in prompthost_adapter.json name the file and the field", "[trainer_files]") {
  const std::string run = test::temp_dir("trainer_files_adapter") + "/run";
  TrainConfig c = test::small_run(run);
  c.max_steps = 1;
  train(c);
  const std::string path = run + "/" + kAdapterInfoFile;
  auto error_of = [&](const std::function<void(json&)>& edit) {
    return error_after_edit(path, edit, [&] { read_adapter_info(run); });
  };
  check_names(path, error_of([](json& j) { j["plugin"] = 5; }), "\"plugin\" must be a string");
  check_names(path, error_of([](json& j) { j["options"] = json::array(); }),
              "\"options\" must be an object");
  check_names(path, error_of([](json& j) {
                j["task_names"] = {"a", 1};
              }),
              "\"task_names.1\" must be a string");
  check_names(path, error_of([](json& j) { j["model"] = "llama"; }), "\"model\" must be an object");
  check_names(path, error_of([](json& j) { j = json::array(); }), "must be a JSON object");
  // and the file as written reads back
  const AdapterInfo info = read_adapter_info(run);
  CHECK(info.plugin == "prompt_tuning");
  CHECK(info.options["num_virtual_tokens"] == 5);
}
