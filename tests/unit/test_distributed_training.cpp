// Data-parallel training under mpirun (host/trainer/ranks.h) on the bundled demo: two
// ranks train as one process does on the same global batches, a run is repeatable bit
// for bit, a run checkpointed with two ranks resumes with one, and a rank that dies or
// hangs stops the whole job with its rank named (then --resume completes the run).
//
// Skipped (with the reason) when the build has no Open MPI or mpirun is missing.
#include <signal.h>
#include <sys/types.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <catch.hpp>
#include <nlohmann/json.hpp>

#include "cli_run.h"
#include "host/trainer/ranks.h"
#include "models/loader/safetensors.h"
#include "test_support.h"

namespace fs = std::filesystem;
using ph::test::shell_quote;

namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Why the suite cannot run here, or "".
std::string skip_reason() {
  if (!ph::trainer::built_with_mpi()) return "this build has no Open MPI (PROMPTHOST_MPI=OFF)";
  if (std::system("command -v mpirun >/dev/null 2>&1") != 0) return "mpirun is not installed";
  return "";
}

// 48 examples of the demo's topic task: three 16-example batches an epoch.
std::string small_data(const std::string& work) {
  std::ifstream in(ph::test::source_path("models/demo/tasks/topic/train.jsonl"));
  const std::string path = work + "/train.jsonl";
  std::ofstream out(path);
  std::string line;
  for (int i = 0; i < 48 && std::getline(in, line); ++i) out << line << "\n";
  return path;
}

std::vector<std::string> train_args(const std::string& data, const std::string& output, int steps,
                                    const std::string& plugin = "prompt_tuning") {
  return {"train",
          "--plugin",
          plugin,
          "--data",
          data,
          "--output",
          output,
          "--max-steps",
          std::to_string(steps),
          "--threads",
          "1",
          "--quiet",
          "--seed",
          "7"};
}

// mpirun's options for a test machine: as root in a container, two ranks on few cores.
std::string mpirun(int ranks) {
  return "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl=self,vader "
         "mpirun --oversubscribe --bind-to none -np " +
         std::to_string(ranks) + " ";
}

std::string command_line(int ranks, const std::vector<std::string>& args) {
  std::string c = ranks > 0 ? mpirun(ranks) : "";
  c += shell_quote(PROMPTHOST_EXE);
  for (const auto& a : args) c += " " + shell_quote(a);
  return c;
}

// Runs the command (with `ranks` under mpirun, or alone for 0); stderr goes to err_file.
int run(int ranks, const std::vector<std::string>& args, const std::string& err_file) {
  const int status =
      std::system((command_line(ranks, args) + " >/dev/null 2>" + shell_quote(err_file)).c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// ‖a − b‖ / ‖b‖ over every tensor of the two runs' adapter files together.
double relative_difference(const std::string& run_dir, const std::string& reference_dir) {
  const ph::SafetensorsFile a(run_dir + "/adapter_model.safetensors");
  const ph::SafetensorsFile b(reference_dir + "/adapter_model.safetensors");
  REQUIRE(a.tensors().size() == b.tensors().size());
  std::vector<float> va, vb;
  for (const ph::TensorInfo& t : b.tensors()) {
    const ph::FloatTensor x = a.to_float(t.name), y = b.to_float(t.name);
    REQUIRE(x.numel == y.numel);
    va.insert(va.end(), x.data, x.data + x.numel);
    vb.insert(vb.end(), y.data, y.data + y.numel);
  }
  return ph::test::relative_l2(va.data(), vb.data(), va.size());
}

// The pid of the rank `rank` of the job training into `output` (its environment and
// command line say so), or 0.
pid_t rank_pid(int rank, const std::string& output) {
  for (const auto& entry : fs::directory_iterator("/proc")) {
    const std::string name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    const std::string cmdline = read_file(entry.path().string() + "/cmdline");
    if (cmdline.find(output) == std::string::npos || cmdline.find("mpirun") != std::string::npos)
      continue;
    const std::string env = read_file(entry.path().string() + "/environ");
    if (env.find("OMPI_COMM_WORLD_RANK=" + std::to_string(rank) + '\0') != std::string::npos)
      return (pid_t)std::stol(name);
  }
  return 0;
}

// Starts the job in the background; its exit code lands in code_file.
void start_job(int ranks, const std::vector<std::string>& args, const std::string& err_file,
               const std::string& code_file) {
  const std::string inner = command_line(ranks, args) + " >/dev/null 2>" + shell_quote(err_file) +
                            "; echo $? > " + shell_quote(code_file);
  REQUIRE(std::system(("sh -c " + shell_quote(inner) + " &").c_str()) == 0);
}

template <class Done>
bool wait_for(Done done, double seconds) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < end) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return done();
}

int exit_code(const std::string& code_file) {
  return std::stoi(read_file(code_file));
}

// The step of the run's checkpoint.
int saved_step(const std::string& run_dir) {
  return nlohmann::json::parse(read_file(run_dir + "/trainer_state.json"))["loop"]["step"]
      .get<int>();
}

}  // namespace

TEST_CASE("two ranks train as one process does, and repeat themselves bit for bit") {
  const std::string why = skip_reason();
  if (!why.empty()) {
    WARN("SKIPPED: " << why);
    return;
  }
  const std::string work = ph::test::temp_dir("distributed_same");
  const std::string data = small_data(work);
  // prefix tuning (the demo's method) for 20 steps, prompt tuning for 5, LLaMA-Adapter
  // (adapter prompts and gates, weighted by each rank's share like the rest) for 5, and a
  // cartridge distilled from the model reading a text (its loss a mean over sequences, so
  // each rank's share is weighted by its sequences) for 5
  struct Case {
    std::string plugin;
    int steps;
    std::vector<std::string> sets;
  };
  const Case cases[] = {
      {"prefix_tuning", 20, {}},
      {"prompt_tuning", 5, {}},
      {"adaption_prompt", 5, {}},
      {"cartridge",
       5,
       {"num_virtual_tokens=8", "objective=distillation", "top_k=8",
        "init_text=Quotes about computers, love, work, animals and the law, as the fortune "
        "program shows them, one after the other."}}};
  for (const Case& c : cases) {
    const std::string& plugin = c.plugin;
    const int steps = c.steps;
    const std::string one = work + "/one-" + plugin, two = work + "/two-" + plugin;
    std::vector<std::string> args1 = train_args(data, one, steps, plugin);
    std::vector<std::string> args2 = train_args(data, two, steps, plugin);
    for (const std::string& set : c.sets)
      for (auto* args : {&args1, &args2}) args->insert(args->end(), {"--set", set});
    REQUIRE(run(0, args1, one + ".err") == 0);
    REQUIRE(run(2, args2, two + ".err") == 0);
    // The same global batches: float32 rounding apart (the ranks add their halves'
    // gradients instead of summing the whole batch at once).
    const double diff = relative_difference(two, one);
    INFO(plugin << ", 2 ranks against 1 process after " << steps << " steps: relative L2 " << diff);
    CHECK(diff <= 1e-6);
    CHECK(diff > 0.0);  // the ranks really did split the work
    // Rank 0 alone wrote the run: one metrics line per step.
    const std::string metrics = read_file(two + "/metrics.jsonl");
    CHECK(std::count(metrics.begin(), metrics.end(), '\n') == steps);
  }
  // The same N and threads: the same files.
  const std::string again = work + "/again";
  REQUIRE(run(2, train_args(data, again, 5), again + ".err") == 0);
  for (const char* file : {"adapter_model.safetensors", "training_state.safetensors"})
    CHECK(read_file(again + "/" + file) == read_file(work + "/two-prompt_tuning/" + file));
}

TEST_CASE("a run checkpointed with two ranks resumes with one and ends as an uninterrupted run") {
  const std::string why = skip_reason();
  if (!why.empty()) {
    WARN("SKIPPED: " << why);
    return;
  }
  const std::string work = ph::test::temp_dir("distributed_resume");
  const std::string data = small_data(work);
  REQUIRE(run(0, train_args(data, work + "/whole", 6), work + "/whole.err") == 0);
  auto first = train_args(data, work + "/split", 6);
  first.insert(first.end(), {"--stop-after", "3"});
  REQUIRE(run(2, first, work + "/first.err") == 0);
  CHECK(saved_step(work + "/split") == 3);
  REQUIRE(run(0, {"train", "--resume", work + "/split", "--threads", "1", "--quiet"},
              work + "/resume.err") == 0);
  const double diff = relative_difference(work + "/split", work + "/whole");
  INFO("2 ranks for 3 steps then 1 for 3, against 1 for 6: relative L2 " << diff);
  CHECK(diff <= 1e-6);
}

TEST_CASE("a rank that dies or hangs stops the job with its rank named; --resume completes") {
  const std::string why = skip_reason();
  if (!why.empty()) {
    WARN("SKIPPED: " << why);
    return;
  }
  const std::string work = ph::test::temp_dir("distributed_faults");
  const std::string data = small_data(work);
  for (const bool hang : {false, true}) {
    DYNAMIC_SECTION((hang ? "rank 1 stopped (SIGSTOP)" : "rank 1 killed (SIGKILL)")) {
      const std::string output = work + (hang ? "/hung" : "/killed");
      auto args = train_args(data, output, 400);
      args.insert(args.end(), {"--save-every", "2", "--rank-timeout", "3"});
      const std::string err = output + ".err", code = output + ".code";
      start_job(2, args, err, code);
      // once a checkpoint is on disk, take rank 1 out
      REQUIRE(wait_for([&] { return fs::exists(output + "/trainer_state.json"); }, 120));
      const pid_t pid = rank_pid(1, output);
      REQUIRE(pid > 0);
      ::kill(pid, hang ? SIGSTOP : SIGKILL);
      REQUIRE(wait_for([&] { return fs::exists(code) && !read_file(code).empty(); }, 120));
      if (hang) ::kill(pid, SIGKILL);  // mpirun's abort cannot end a stopped process
      const std::string message = read_file(err);
      INFO(message);
      CHECK(exit_code(code) != 0);
      if (hang)
        CHECK(message.find("rank 1 did not reach the exchange") != std::string::npos);
      else
        CHECK(message.find("rank 1") != std::string::npos);
      // the last checkpoint is whole, and the run continues from it alone
      const int step = saved_step(output);
      REQUIRE(run(0,
                  {"train", "--resume", output, "--threads", "1", "--quiet", "--stop-after",
                   std::to_string(step + 2)},
                  output + ".resume.err") == 0);
      CHECK(saved_step(output) == step + 2);
    }
  }
}
