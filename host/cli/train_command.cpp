// `prompthost train`: train a method plugin's soft prompt on a frozen model.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include <boost/program_options.hpp>

#include "host/cli/bundled_demo.h"
#include "host/cli/commands.h"
#include "host/cli/plugin_timeout.h"
#include "host/cli/program_path.h"
#include "host/cli/tokenizer_path.h"
#include "host/plugin/method_options.h"
#include "host/plugin/plugin_discovery.h"
#include "host/plugin/plugin_watchdog.h"
#include "host/trainer/json_fields.h"
#include "host/trainer/option_checks.h"
#include "host/trainer/progress.h"
#include "host/trainer/ranks.h"
#include "host/trainer/run_files.h"
#include "host/trainer/trainer.h"
#include "models/common/error.h"

namespace ph::cli {

namespace {

namespace po = boost::program_options;

const char kPrefix[] = "prompthost train: ";

po::options_description train_options(trainer::TrainConfig& c, std::string& config_file,
                                      std::string& resume, std::string& seed,
                                      double& plugin_timeout, double& rank_timeout) {
  po::options_description d("Options");
  // clang-format off
  d.add_options()
    ("help,h", "show this help (with --plugin: also the plugin's own options) and exit")
    ("plugin", po::value(&c.plugin), "the method: a plugin name (see `prompthost plugins`) or a .so file")
    ("plugin-path", po::value(&c.plugin_paths)->composing(), "another folder to look for plugins in (repeatable)")
    ("plugin-timeout", plugin_timeout_value(plugin_timeout), kPluginTimeoutHelp)
    ("model", po::value(&c.model)->default_value(bundled_demo_path("hf"), "the bundled demo"),
     "a Hugging Face model folder or a llama2.c .bin")
    ("tokenizer", po::value(&c.tokenizer), "tokenizer file; default: the model folder's, or the "
     "tokenizer.bin beside a .bin")
    ("data", po::value(&c.data), "training data, JSONL: {\"text\"}, {\"input\",\"output\"}, {\"text\",\"label\"} "
     "or token ids {\"input_ids\", ...} (+ \"task\"); default with the demo model: its topic task")
    ("task-type", po::value(&c.task_type), "CAUSAL_LM, SEQ_2_SEQ_LM or SEQ_CLS; default: the model's "
     "(config.json architectures); refused with the reason when the model cannot do it")
    ("eval-data", po::value(&c.eval_data), "evaluation data, same format (before, every --eval-every steps, after)")
    ("output", po::value(&c.output_dir), "the adapter folder to write; default: runs/<plugin>")
    ("overwrite", po::bool_switch(&c.overwrite), "replace the run already in --output (else refused)")
    ("epochs", po::value(&c.epochs)->default_value(3), "passes over the data")
    ("max-steps", po::value(&c.max_steps)->default_value(0), "optimizer steps; > 0 overrides --epochs")
    ("batch-size", po::value(&c.batch_size)->default_value(16), "examples per batch")
    ("max-batch-tokens", po::value(&c.max_batch_tokens)->default_value(0), "token budget per batch; 0: none")
    ("grad-accum", po::value(&c.grad_accum)->default_value(1), "batches per optimizer step")
    ("max-length", po::value(&c.max_length)->default_value(0), "cut examples to this many tokens; 0: the context")
    ("lr", po::value(&c.lr)->default_value(3e-2, "0.03"), "peak learning rate")
    ("schedule", po::value(&c.schedule)->default_value("linear"), "after warmup: linear, cosine or constant")
    ("warmup-steps", po::value(&c.warmup_steps)->default_value(20), "linear warmup steps")
    ("weight-decay", po::value(&c.adamw.weight_decay)->default_value(0.0, "0"), "AdamW weight decay")
    ("max-grad-norm", po::value(&c.adamw.max_grad_norm)->default_value(1.0, "1"), "clip the gradient norm; 0: no clipping")
    ("seed", po::value(&seed)->default_value("0"), "seed: the same seed, machine and --threads give the same run bit for bit")
    ("threads", po::value(&c.threads)->default_value(0), "threads for the engine; 0: all cores "
     "(under mpirun: the cores shared among the machine's ranks)")
    ("rank-timeout", po::value(&rank_timeout)->default_value(600, "600"), "under mpirun: seconds "
     "a rank waits for the others at an exchange before stopping the job, naming the late ranks")
    ("set", po::value(&c.set)->composing(), "a plugin option, key=value (repeatable); see --plugin X --help")
    ("config", po::value(&config_file), "an adapter_config.json whose fields set the plugin's options")
    ("resume", po::value(&resume), "continue the run saved in this folder, with its settings "
     "(other options but --threads, --stop-after, --quiet, a moved --data/--eval-data and the "
     "plugin's --plugin-path, --plugin and --plugin-timeout are ignored)")
    ("eval-every", po::value(&c.eval_every)->default_value(0), "evaluate every N steps; 0: before and after only")
    ("patience", po::value(&c.patience)->default_value(0), "stop after N evaluations without improvement; 0: never")
    ("save-every", po::value(&c.save_every)->default_value(0), "checkpoint every N steps; 0: at the end")
    ("stop-after", po::value(&c.stop_after)->default_value(0), "save and stop at step N (to split a run)")
    ("recompute", po::bool_switch(&c.recompute), "recompute activations in backward: less memory, more time")
    ("no-generate-eval", "skip exact-match generation during evaluation (faster)")
    ("quiet,q", po::bool_switch(&c.quiet), "no progress output");
  // clang-format on
  return d;
}

void print_help(const po::options_description& d, const trainer::TrainConfig& c) {
  std::cout << "Usage: prompthost train --plugin NAME [OPTIONS]\n"
               "       prompthost train --resume DIR [--threads K] [--stop-after N] [--quiet]\n"
               "           [--plugin-path DIR] [--plugin FILE] [--plugin-timeout S]\n\n"
               "Trains the method's soft prompt through the frozen model, evaluates it before\n"
               "and after, and writes the adapter folder (PEFT's adapter_config.json and\n"
               "adapter_model.safetensors, plus what --resume needs).\n\n"
            << d
            << "\nExamples:\n"
               "  prompthost train --plugin prefix_tuning     # the bundled demo model and task\n"
               "  prompthost train --plugin prompt_tuning --model ~/models/SmolLM2-135M \\\n"
               "      --data train.jsonl --eval-data test.jsonl --set num_virtual_tokens=20 \\\n"
               "      --output runs/smol-pt\n"
               "  prompthost train --resume runs/smol-pt       # continue a stopped run\n";
  if (c.plugin.empty()) {
    std::cout << "\nWith --plugin NAME, --help also lists that plugin's options.\n";
    return;
  }
  try {
    auto lib = host::find_plugin(c.plugin, c.plugin_paths);
    std::cout << "\nOptions of " << lib->descriptor().name << " (--set key=value):\n"
              << host::describe_options(lib->descriptor());
  } catch (const std::exception& e) {
    std::cout << "\n(cannot list the options of " << c.plugin << ": " << e.what() << ")\n";
  }
}

// The method a --plugin names: the name itself, or for path/to/ph_x.so, x.
std::string method_name(const std::string& plugin) {
  std::string stem = std::filesystem::path(plugin).stem().string();
  if (stem.rfind("ph_", 0) == 0 && plugin.find('/') != std::string::npos) stem = stem.substr(3);
  return stem;
}

// A string option of the demo's settings: "$DEMO/tasks/..." names a file of the bundled
// demo folder (CPT's context examples), wherever it is installed.
std::string demo_file(const std::string& value) {
  const std::string demo = "$DEMO/";
  return value.rfind(demo, 0) == 0 ? bundled_demo_path(value.substr(demo.size())) : value;
}

// The bundled demo's per-method settings (models/demo/train-defaults.json: those of the
// PyTorch reference runs), for what the command line left at its defaults.
void apply_demo_defaults(trainer::TrainConfig& c, const po::variables_map& vm,
                         const std::string& method, bool show) {
  const std::string file = bundled_demo_path("train-defaults.json");
  if (!std::filesystem::exists(file)) return;
  const nlohmann::json all = trainer::read_json(file);
  if (!all.is_object() || !all.contains(method)) return;
  const trainer::JsonPlace place{file, method};
  const nlohmann::json& d = all.at(method);
  if (vm["lr"].defaulted()) c.lr = trainer::json_field_or(d, "lr", c.lr, place);
  if (vm["epochs"].defaulted()) c.epochs = trainer::json_field_or(d, "epochs", c.epochs, place);
  if (!vm["config"].empty() || !d.contains("options")) return;
  const nlohmann::json& options = d.at("options");
  if (!options.is_object()) (place / "options").fail("must be an object");
  std::vector<std::string> set;
  for (const auto& [key, value] : options.items()) {
    const std::string prefix = key + "=";  // (clang 14 cannot capture a structured binding)
    const bool given = std::any_of(c.set.begin(), c.set.end(),
                                   [&](const std::string& kv) { return kv.rfind(prefix, 0) == 0; });
    if (!given)
      set.push_back(key + "=" +
                    (value.is_string() ? demo_file(value.get<std::string>()) : value.dump()));
  }
  c.set.insert(c.set.begin(), set.begin(), set.end());
  std::string shown;
  for (const auto& kv : set) shown += " --set " + kv;
  if (show)
    std::printf("bundled demo: %s with --lr %g --epochs %d%s (%s)\n", method.c_str(), c.lr,
                c.epochs, shown.c_str(), file.c_str());
}

void print_report(const trainer::TrainSummary& s, int ranks) {
  const std::string on = ranks > 1 ? " on " + std::to_string(ranks) + " ranks" : "";
  std::printf("\n%s: %d steps in %s%s, %zu trainable parameters, last loss %.4f\n",
              s.plugin.c_str(), s.steps, trainer::format_duration(s.seconds).c_str(), on.c_str(),
              s.trainable_parameters, s.last_loss);
  if (s.evaluated) {
    std::printf("  eval loss        %.4f -> %.4f\n", s.before.loss, s.after.loss);
    if (s.after.classification) {
      std::printf("  accuracy         %.1f%% -> %.1f%%\n", 100 * s.before.accuracy,
                  100 * s.after.accuracy);
      std::printf("  macro-F1         %.4f -> %.4f\n", s.before.macro_f1, s.after.macro_f1);
    }
    if (s.after.has_outputs) {
      std::printf("  exact match      %.1f%% -> %.1f%%\n", 100 * s.before.exact_match,
                  100 * s.after.exact_match);
      if (s.after.rank_candidates >= 2)
        std::printf("  rank accuracy    %.1f%% -> %.1f%%\n", 100 * s.before.rank_accuracy,
                    100 * s.after.rank_accuracy);
    }
  }
  std::printf("adapter written to %s\n", s.output_dir.c_str());
  // a multitask adapter needs the task to generate for
  const std::string task =
      !s.per_task ? "" : " --task " + (s.task_names.empty() ? "0" : s.task_names.front());
  if (s.task_type == "SEQ_2_SEQ_LM") return;  // no encoder-decoder generation yet
  std::printf("%s with it:  %s generate --adapter %s%s --prompt \"...\"\n",
              s.task_type == "SEQ_CLS" ? "classify" : "generate", program_path().c_str(),
              s.output_dir.c_str(), task.c_str());
}

// Under mpirun with --threads 0: the machine's cores shared among its ranks (two ranks
// with all cores each would fight over them).
int threads_per_rank() {
  const char* local = std::getenv("OMPI_COMM_WORLD_LOCAL_SIZE");
  const int ranks_here = local ? std::max(1, std::atoi(local)) : 1;
  return std::max(1, (int)std::thread::hardware_concurrency() / ranks_here);
}

}  // namespace

int train_command(int argc, char** argv) {
  trainer::TrainConfig c;
  std::string config_file, resume, seed;
  double plugin_timeout = 0;
  double rank_timeout = 600;
  const auto desc = train_options(c, config_file, resume, seed, plugin_timeout, rank_timeout);
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(argc, argv).options(desc).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    std::fprintf(stderr, "%s%s\n(see prompthost train --help)\n", kPrefix, e.what());
    return kExitUsage;
  }
  if (vm.count("help")) {
    print_help(desc, c);
    return kExitOk;
  }
  try {
    c.seed = trainer::parse_seed("--seed", seed);
    trainer::check_int("--warmup-steps", c.warmup_steps, 0);
    trainer::check_number("--rank-timeout", rank_timeout, 1.0, 1e7);
    trainer::check_train_options(c);
  } catch (const trainer::OptionError& e) {
    std::fprintf(stderr, "%s%s\n(see prompthost train --help)\n", kPrefix, e.what());
    return kExitUsage;
  }
  c.eval_generate = !vm.count("no-generate-eval");
  if (resume.empty() && c.plugin.empty()) {
    std::fprintf(stderr, "%s--plugin is required (see prompthost plugins)\n", kPrefix);
    return kExitUsage;
  }
  trainer::Ranks* ranks = nullptr;
  try {
    ranks = &trainer::Ranks::world();  // under mpirun: this process's rank
    ranks->set_timeout(rank_timeout);
    if (ranks->distributed() && c.threads == 0) c.threads = threads_per_rank();
    if (resume.empty()) {
      const bool demo = vm["model"].defaulted();
      if (c.data.empty() && demo) {  // the bundled defaults: the demo model's topic task
        c.data = bundled_demo_path("tasks/topic/train.jsonl");
        if (c.eval_data.empty()) c.eval_data = bundled_demo_path("tasks/topic/test.jsonl");
      }
      if (demo) apply_demo_defaults(c, vm, method_name(c.plugin), ranks->root());
      if (c.data.empty()) {
        std::fprintf(stderr, "%s--data is required with --model\n", kPrefix);
        return kExitUsage;
      }
      if (c.output_dir.empty()) c.output_dir = "runs/" + method_name(c.plugin);
      if (!config_file.empty()) c.method_config = trainer::read_json(config_file);
      c.tokenizer = tokenizer_path(c.model, c.tokenizer);
    }
    const host::PluginWatchdog watchdog(plugin_timeout);
    const trainer::TrainSummary summary = trainer::train(c, resume);
    if (ranks->root() && summary.already_finished)
      std::printf("%s: the run already finished at step %d of %d; nothing to resume\n",
                  summary.output_dir.c_str(), summary.steps, summary.total_steps);
    else if (ranks->root())
      print_report(summary, ranks->size());
    ranks->finalize();
    return kExitOk;
  } catch (const trainer::OptionError& e) {
    // Under mpirun every rank stops the job: the others would wait for it forever.
    if (ranks && ranks->distributed())
      ranks->abort(kPrefix + ranks->prefix() + e.what(), kExitUsage);
    std::fprintf(stderr, "\n%s%s\n(see prompthost train --help)\n", kPrefix, e.what());
    return kExitUsage;
  } catch (const std::exception& e) {
    if (ranks && ranks->distributed())
      ranks->abort(kPrefix + ranks->prefix() + e.what(), kExitFailure);
    std::fprintf(stderr, "\n%s%s\n", kPrefix, e.what());
    return kExitFailure;
  }
}

}  // namespace ph::cli
