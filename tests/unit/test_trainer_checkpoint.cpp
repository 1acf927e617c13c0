// A checkpoint is one unit: a kill at any point of saving (the writer's fault hook,
// PROMPTHOST_FAULT_AFTER_FILE / PROMPTHOST_FAULT_AFTER_INSTALL, in a prompthost process)
// leaves the previous checkpoint or the new one, and --resume then ends exactly as an
// uninterrupted run. Also: a folder mixing two saves is refused, a crash's leftovers are
// removed, a folder without a checkpoint says why, a finished run stays as it is, the
// output folder is checked before training, and --resume trains on the run's own data.
#include <catch.hpp>

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "host/trainer/adapter_files.h"
#include "host/trainer/run_files.h"
#include "host/trainer/trainer.h"
#include "models/common/error.h"
#include "test_support.h"
#include "trainer_test_support.h"

#ifndef PROMPTHOST_EXE
#error "PROMPTHOST_EXE must name the prompthost executable (tests/CMakeLists.txt)"
#endif

using namespace ph;
using namespace ph::trainer;
using Catch::Contains;
using test::read_bytes;
using test::small_run;
namespace fs = std::filesystem;

namespace {

struct Exit {
  int code = -1;   // the exit code, or -1 when killed
  int signal = 0;  // the signal that killed it, or 0
  std::string err;
};

// Runs prompthost with `args`, one more environment variable `env` ("NAME=VALUE", or ""),
// in folder `cwd` ("" = this one); stdout is dropped, stderr kept.
Exit run_prompthost(std::vector<std::string> args, const std::string& env = "",
                    const std::string& cwd = "") {
  static int runs = 0;
  const std::string err_file =
      std::string(PROMPTHOST_BINARY_DIR) + "/test-tmp/checkpoint-stderr-" + std::to_string(++runs);
  args.insert(args.begin(), PROMPTHOST_EXE);
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> env_strings;
  for (char** e = environ; *e; ++e) env_strings.push_back(*e);
  if (!env.empty()) env_strings.push_back(env);
  std::vector<char*> envp;
  for (auto& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);
  const pid_t pid = fork();
  if (pid == 0) {  // only async-signal-safe calls until execve
    if (!cwd.empty() && chdir(cwd.c_str()) != 0) _exit(126);
    const int err = open(err_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const int null = open("/dev/null", O_WRONLY);
    if (err < 0 || null < 0) _exit(126);
    dup2(err, STDERR_FILENO);
    dup2(null, STDOUT_FILENO);
    execve(argv[0], argv.data(), envp.data());
    _exit(127);
  }
  REQUIRE(pid > 0);
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  Exit e;
  if (WIFEXITED(status)) e.code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) e.signal = WTERMSIG(status);
  e.err = read_bytes(err_file);
  return e;
}

// `prompthost train` with small_run's settings (and another seed, if given).
std::vector<std::string> small_run_args(const std::string& out, const std::string& data,
                                        const std::string& seed = "7") {
  return {"train",
          "--plugin",
          "prompt_tuning",
          "--model",
          test::source_path("models/demo/hf"),
          "--data",
          data,
          "--output",
          out,
          "--max-steps",
          "6",
          "--batch-size",
          "4",
          "--lr",
          "0.03",
          "--warmup-steps",
          "2",
          "--seed",
          seed,
          "--threads",
          "1",
          "--set",
          "num_virtual_tokens=5",
          "-q"};
}

std::vector<std::string> with(std::vector<std::string> args, const std::vector<std::string>& more) {
  args.insert(args.end(), more.begin(), more.end());
  return args;
}

std::vector<std::string> resume_args(const std::string& dir) {
  return {"train", "--resume", dir, "--threads", "1", "-q"};
}

TrainConfig resume_config() {
  TrainConfig c;
  c.threads = 1;
  c.quiet = true;
  return c;
}

std::string in(const std::string& dir, const std::string& file) {
  return (fs::path(dir) / file).string();
}

std::set<std::string> entries(const std::string& dir) {
  std::set<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.insert(e.path().filename().string());
  return names;
}

const std::set<std::string> kCheckpoint = {kAdapterConfigFile, kAdapterModelFile, kAdapterInfoFile,
                                           kTrainingStateFile, kTrainerStateFile, "metrics.jsonl",
                                           "loss_curve.svg"};

// "step:loss" of every training step in metrics.jsonl (tokens_per_s varies run to run).
std::vector<std::string> step_losses(const std::string& dir) {
  std::vector<std::string> out;
  std::istringstream lines(read_bytes(in(dir, "metrics.jsonl")));
  for (std::string line; std::getline(lines, line);) {
    const auto m = nlohmann::json::parse(line);
    if (m.contains("loss")) out.push_back(m["step"].dump() + ":" + m["loss"].dump());
  }
  return out;
}

// The run's parameters and moments, its adapter and its losses equal the reference's.
void check_same_run(const std::string& dir, const std::string& reference) {
  REQUIRE(fs::exists(in(reference, kTrainingStateFile)));
  CHECK(read_bytes(in(dir, kTrainingStateFile)) == read_bytes(in(reference, kTrainingStateFile)));
  CHECK(read_bytes(in(dir, kAdapterModelFile)) == read_bytes(in(reference, kAdapterModelFile)));
  CHECK(step_losses(dir) == step_losses(reference));
  CHECK(step_losses(dir).size() == 6);
}

// small_run stopped at step 3 in `dir` (its data file beside it).
TrainConfig stopped_run(const std::string& dir) {
  TrainConfig first = small_run(dir);
  first.stop_after = 3;
  train(first);
  return first;
}

// Changes the current folder for a scope.
struct InFolder {
  fs::path before = fs::current_path();
  explicit InFolder(const std::string& dir) { fs::current_path(dir); }
  ~InFolder() { fs::current_path(before); }
};

}  // namespace

TEST_CASE(
    "a kill at any point of saving leaves one whole checkpoint; resuming ends as the "
    "uninterrupted run",
    "[checkpoint]") {
  const std::string root = test::temp_dir("checkpoint_kill");
  const std::string data = test::topic_subset(root + "/train.jsonl", 24);
  REQUIRE(run_prompthost(small_run_args(root + "/whole", data)).code == 0);
  const std::vector<std::string> faults = {
      // before the commit: the step-3 checkpoint stays
      "PROMPTHOST_FAULT_AFTER_FILE=adapter_model.safetensors",
      "PROMPTHOST_FAULT_AFTER_FILE=training_state.safetensors",  // the measured case
      "PROMPTHOST_FAULT_AFTER_FILE=trainer_state.json",
      // after it: the next run finishes moving the step-6 checkpoint in
      "PROMPTHOST_FAULT_AFTER_INSTALL=adapter_model.safetensors",
      "PROMPTHOST_FAULT_AFTER_INSTALL=training_state.safetensors"};
  for (size_t i = 0; i < faults.size(); ++i) {
    INFO(faults[i]);
    const std::string run = root + "/split" + std::to_string(i);
    REQUIRE(run_prompthost(with(small_run_args(run, data), {"--stop-after", "3"})).code == 0);
    const Exit killed = run_prompthost(resume_args(run), faults[i]);
    REQUIRE(killed.signal == SIGKILL);  // the hook fired in the last save
    const Exit resumed = run_prompthost(resume_args(run));
    INFO(resumed.err);
    REQUIRE(resumed.code == 0);
    check_same_run(run, root + "/whole");
    CHECK(entries(run) == kCheckpoint);  // no staging folder, no temporary file
  }
}

TEST_CASE("a folder whose files come from different saves is refused by --resume", "[checkpoint]") {
  const std::string root = test::temp_dir("checkpoint_mixed");
  stopped_run(root + "/split");
  train(small_run(root + "/whole"));
  // What a kill between training_state.safetensors and trainer_state.json left before:
  // the parameters of step 6 beside the loop state of step 3.
  fs::copy_file(in(root + "/whole", kTrainingStateFile), in(root + "/split", kTrainingStateFile),
                fs::copy_options::overwrite_existing);
  const std::string message = test::error_message([&] { train(resume_config(), root + "/split"); });
  CHECK_THAT(message, Contains(in(root + "/split", kTrainingStateFile)));
  CHECK_THAT(message, Contains("step 3"));
}

TEST_CASE(
    "what a crash while saving left is removed by the next run; a failed write leaves "
    "nothing",
    "[checkpoint]") {
  const std::string root = test::temp_dir("checkpoint_leftovers");
  const std::string run = root + "/split";
  stopped_run(run);
  fs::create_directories(run + "/.checkpoint.tmp-AbC123");
  test::write_bytes(run + "/.checkpoint.tmp-AbC123/" + kTrainingStateFile, "half");
  test::write_bytes(run + "/" + kTrainerStateFile + ".tmp", "half");
  test::write_bytes(run + "/" + kAdapterModelFile + ".tmp-Q1w2E3", "half");
  test::write_bytes(run + "/notes.txt.tmp-keep", "the user's");
  train(resume_config(), run);
  std::set<std::string> expected = kCheckpoint;
  expected.insert("notes.txt.tmp-keep");  // not a run's file: it stays
  CHECK(entries(run) == expected);

  // A write that fails (here the rename, over a folder) removes its temporary file.
  const std::string blocked = root + "/blocked";
  fs::create_directories(blocked + "/inside");
  CHECK_THROWS_AS(write_file_atomic(blocked, "text"), Error);
  for (const std::string& name : entries(root))
    CHECK(name.find("blocked.tmp") == std::string::npos);
}

TEST_CASE("--resume on a run killed before its first save says so", "[checkpoint]") {
  const std::string root = test::temp_dir("checkpoint_no_save");
  const std::string data = test::topic_subset(root + "/train.jsonl", 24);
  const std::string run = root + "/run";
  const Exit killed = run_prompthost(
      small_run_args(run, data), "PROMPTHOST_FAULT_AFTER_FILE=" + std::string(kAdapterModelFile));
  REQUIRE(killed.signal == SIGKILL);
  const std::string message = test::error_message([&] { train(resume_config(), run); });
  CHECK_THAT(message, Contains(run + " holds no checkpoint"));
  CHECK_THAT(message, Contains("the run stopped before its first save"));
  CHECK(entries(run).empty());  // the unfinished save was removed
  CHECK_THAT(test::error_message([&] { train(resume_config(), root + "/never"); }),
             Contains(root + "/never: no such folder"));
}

TEST_CASE("resuming a finished run changes nothing", "[checkpoint]") {
  const std::string run = test::temp_dir("checkpoint_finished") + "/run";
  TrainConfig c = small_run(run);
  c.eval_data = c.data;
  c.eval_generate = false;
  train(c);
  const std::string metrics = read_bytes(in(run, "metrics.jsonl"));
  const std::string state = read_bytes(in(run, kTrainerStateFile));
  REQUIRE(metrics.find("eval_loss") != std::string::npos);
  train(resume_config(), run);
  CHECK(read_bytes(in(run, "metrics.jsonl")) == metrics);  // no second evaluation
  CHECK(read_bytes(in(run, kTrainerStateFile)) == state);
}

TEST_CASE(
    "the output folder is checked before training: it can be written, and holds no "
    "other run unless --overwrite",
    "[checkpoint]") {
  const std::string root = test::temp_dir("checkpoint_output");
  // A folder that cannot be made (a file is in the way): reported before the model is
  // even loaded, not at the first save.
  test::write_bytes(root + "/a-file", "x");
  TrainConfig blocked = small_run(root + "/a-file/run");
  blocked.data = test::topic_subset(root + "/train.jsonl", 24);
  blocked.model = "/nonexistent/model";
  const std::string message = test::error_message([&] { train(blocked); });
  CHECK_THAT(message, Contains(root + "/a-file/run"));
  CHECK_THAT(message, !Contains("/nonexistent/model"));

  // Another run in the folder is refused, and left as it was.
  const std::string run = root + "/run";
  const std::string data = test::topic_subset(root + "/train.jsonl", 24);
  REQUIRE(run_prompthost(small_run_args(run, data)).code == 0);
  const std::string state = read_bytes(in(run, kTrainingStateFile));
  const Exit refused = run_prompthost(small_run_args(run, data, "8"));
  CHECK(refused.code == 1);
  CHECK_THAT(refused.err, Contains(run + ": the output folder holds another run"));
  CHECK_THAT(refused.err, Contains("--overwrite"));
  CHECK(read_bytes(in(run, kTrainingStateFile)) == state);

  // --overwrite with a mistake in the new run's settings loses nothing.
  const Exit mistaken = run_prompthost(with(
      small_run_args(run, data, "8"), {"--overwrite", "--eval-data", root + "/no-such.jsonl"}));
  CHECK(mistaken.code == 1);
  CHECK(read_bytes(in(run, kTrainingStateFile)) == state);

  // --overwrite replaces it: removing the old run when the new one starts training, so
  // that a kill during the new one never leaves the old run for --resume to continue.
  const Exit killed =
      run_prompthost(with(small_run_args(run, data, "8"), {"--overwrite"}),
                     "PROMPTHOST_FAULT_AFTER_FILE=" + std::string(kTrainingStateFile));
  REQUIRE(killed.signal == SIGKILL);
  CHECK_THAT(test::error_message([&] { train(resume_config(), run); }),
             Contains("holds no checkpoint"));
  const Exit replaced = run_prompthost(with(small_run_args(run, data, "8"), {"--overwrite"}));
  CHECK(replaced.code == 0);
  CHECK(read_bytes(in(run, kTrainingStateFile)) != state);
  CHECK(read_json(in(run, kTrainerStateFile))["config"]["seed"] == 8);
}

TEST_CASE("--resume trains on the run's own data from any current folder", "[checkpoint]") {
  const std::string root = test::temp_dir("checkpoint_cwd");
  train(small_run(root + "/whole"));
  fs::create_directories(root + "/first");
  fs::create_directories(root + "/second");
  test::topic_subset(root + "/first/train.jsonl", 24);   // the run's data
  test::topic_subset(root + "/second/train.jsonl", 20);  // another file of the same name
  {
    InFolder first(root + "/first");
    TrainConfig c = small_run("run");
    c.data = "train.jsonl";
    c.stop_after = 3;
    train(c);
  }
  {
    InFolder second(root + "/second");
    train(resume_config(), root + "/first/run");
  }
  check_same_run(root + "/first/run", root + "/whole");
}

TEST_CASE("--resume refuses data that changed, and takes moved data given again", "[checkpoint]") {
  const std::string root = test::temp_dir("checkpoint_data");
  train(small_run(root + "/whole"));
  const std::string run = root + "/split";
  const std::string data = stopped_run(run).data, original = read_bytes(data);

  test::write_bytes(data, original + "{\"text\": \"one more line\"}\n");
  std::string message = test::error_message([&] { train(resume_config(), run); });
  CHECK_THAT(message, Contains(data + ": not the training data the run started with"));

  test::write_bytes(data, original);
  const std::string moved = root + "/moved.jsonl";
  fs::rename(data, moved);
  message = test::error_message([&] { train(resume_config(), run); });
  CHECK_THAT(message, Contains("the run's training data " + data + " is gone"));
  CHECK_THAT(message, Contains("--data"));
  TrainConfig again = resume_config();
  again.data = moved;
  train(again, run);
  check_same_run(run, root + "/whole");
}

TEST_CASE("a trainer_state.json of an older PromptHost (no manifest, no inputs) still resumes",
          "[checkpoint]") {
  const std::string root = test::temp_dir("checkpoint_old_state");
  train(small_run(root + "/whole"));
  const std::string run = root + "/split";
  stopped_run(run);
  nlohmann::json state = read_json(in(run, kTrainerStateFile));
  state.erase("checkpoint");
  state.erase("inputs");
  state["loop"].erase("finished");
  write_json_atomic(in(run, kTrainerStateFile), state);
  train(resume_config(), run);
  check_same_run(run, root + "/whole");
}
