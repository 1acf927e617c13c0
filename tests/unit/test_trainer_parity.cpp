// The whole training loop against PyTorch: `prompthost train --plugin prefix_tuning` on
// the demo's topic task with the reference settings (lr 1e-3, batch 16, warmup 20,
// clip 1, AdamW, projection with hidden 128), stopped after 20 of its 258 steps, must
// follow the same run done in float64 PyTorch step for step: the loss and gradient norm
// of every step, the learning rate, and the parameters after the last step.
//
// The fixture (tests/fixtures/training/) comes from bench/reference/train_topic.py
// --fixture, which starts from PromptHost's seed-0 initialisation (read from a run at
// lr 0) and batches in PromptHost's shuffle order, so any difference is the arithmetic:
// the engine's forward and backward, the plugin, the loss, clipping, AdamW, the schedule.
// If the plugin's initialisation or the shuffle is changed on purpose, step 1's loss
// moves; regenerate the fixture as its metadata says.
#include <catch.hpp>

#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "host/trainer/adapter_files.h"
#include "host/trainer/trainer.h"
#include "models/loader/safetensors.h"
#include "test_support.h"

using namespace ph;
using namespace ph::trainer;

namespace {

constexpr double kTolerance = 1e-4;  // relative L2, float32 against float64

double relative_l2(const std::vector<double>& a, const std::vector<double>& b) {
  REQUIRE(a.size() == b.size());
  return test::relative_l2(a.data(), b.data(), b.size());
}

}  // namespace

TEST_CASE("prefix tuning on the demo follows float64 PyTorch for 20 steps", "[trainer]") {
  const SafetensorsFile fixture(
      test::source_path("tests/fixtures/training/prefix_tuning_topic_20_steps.safetensors"));
  const auto steps = nlohmann::json::parse(fixture.metadata().at("steps"));
  REQUIRE(steps.size() == 20);

  TrainConfig c;
  c.plugin = "prefix_tuning";
  c.model = test::source_path("models/demo/hf");
  c.data = test::source_path("models/demo/tasks/topic/train.jsonl");
  c.output_dir = test::temp_dir("trainer_parity");
  c.epochs = 3;  // the schedule of the whole run (258 steps), of which 20 are taken
  c.stop_after = (int)steps.size();
  c.batch_size = 16;
  c.lr = 1e-3;
  c.warmup_steps = 20;
  c.seed = 0;
  c.quiet = true;
  c.set = {"num_virtual_tokens=20", "prefix_projection=true", "encoder_hidden_size=128"};
  const TrainSummary summary = train(c);
  REQUIRE(summary.steps == (int)steps.size());
  REQUIRE(summary.total_steps == 258);

  // step by step: what metrics.jsonl logged against what PyTorch computed
  std::map<int, nlohmann::json> logged;
  std::ifstream metrics(c.output_dir + "/metrics.jsonl");
  for (std::string line; std::getline(metrics, line);) {
    const auto m = nlohmann::json::parse(line);
    if (m.contains("loss")) logged[m["step"].get<int>()] = m;
  }
  std::vector<double> loss, loss_ref, norm, norm_ref, lr, lr_ref;
  for (const auto& s : steps) {
    const int step = s["step"].get<int>();
    REQUIRE(logged.count(step));
    loss.push_back(logged[step]["loss"]), loss_ref.push_back(s["loss"]);
    norm.push_back(logged[step]["grad_norm"]), norm_ref.push_back(s["grad_norm"]);
    lr.push_back(logged[step]["lr"]), lr_ref.push_back(s["lr"]);
  }
  INFO("step 1: loss " << loss[0] << ", PyTorch " << loss_ref[0]
                       << " (differs from the start: the initialisation or the shuffle changed)");
  CHECK(std::abs(loss[0] - loss_ref[0]) / loss_ref[0] < kTolerance);
  CHECK(relative_l2(loss, loss_ref) < kTolerance);
  CHECK(relative_l2(norm, norm_ref) < kTolerance);
  CHECK(relative_l2(lr, lr_ref) < 1e-12);  // the schedule is exact arithmetic

  // the parameters after the last step (the training state keeps the encoder too)
  const SafetensorsFile state(c.output_dir + "/" + kTrainingStateFile);
  int compared = 0;
  for (const auto& t : fixture.tensors()) {
    const FloatTensor want = fixture.to_float(t);
    const FloatTensor got = state.to_float(t.name);
    REQUIRE(got.numel == want.numel);
    const double err = test::relative_l2(got.data, want.data, want.numel);
    INFO(t.name << ": relative L2 error " << err);
    CHECK(err < kTolerance);
    ++compared;
  }
  CHECK(compared == 5);  // embedding + transform.{0,2}.{weight,bias}
}
