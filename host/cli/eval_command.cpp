// `prompthost eval`: evaluate an adapter on data (loss, perplexity, exact match, rank
// accuracy).
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include <boost/program_options.hpp>

#include "host/cli/bundled_demo.h"
#include "host/cli/commands.h"
#include "host/cli/plugin_timeout.h"
#include "host/cli/tokenizer_path.h"
#include "host/plugin/plugin_watchdog.h"
#include "host/trainer/adapter_loading.h"
#include "host/trainer/dataset.h"
#include "host/trainer/evaluation.h"
#include "host/trainer/option_checks.h"
#include "host/trainer/run_files.h"
#include "models/common/error.h"

namespace ph::cli {

namespace po = boost::program_options;

int eval_command(int argc, char** argv) {
  std::string adapter, model, tokenizer, data, predictions;
  std::vector<std::string> plugin_paths;
  int threads = 0, batch_size = 16;
  double plugin_timeout = 0;
  po::options_description desc("Options");
  // clang-format off
  desc.add_options()
    ("help,h", "show this help and exit")
    ("adapter", po::value(&adapter), "the adapter folder (PromptHost's or PEFT's) (required)")
    ("model", po::value(&model), "the frozen model; default: the adapter's base model if it is a "
     "path here, else the bundled demo")
    ("tokenizer", po::value(&tokenizer), "tokenizer file; default: the model's")
    ("data", po::value(&data), "JSONL data to evaluate on (required)")
    ("batch-size", po::value(&batch_size)->default_value(16), "examples per forward pass")
    ("plugin-path", po::value(&plugin_paths)->composing(), "another folder to look for plugins in")
    ("plugin-timeout", plugin_timeout_value(plugin_timeout), kPluginTimeoutHelp)
    ("threads", po::value(&threads)->default_value(0), "threads for the engine; 0: all cores")
    ("no-generate", "skip exact-match generation")
    ("predictions", po::value(&predictions), "write each example's generated output to this JSONL "
     "file ({\"input\", \"expected\", \"generated\"} per line)");
  // clang-format on
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(argc, argv).options(desc).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    std::fprintf(stderr, "prompthost eval: %s\n", e.what());
    return kExitUsage;
  }
  if (vm.count("help")) {
    std::cout << "Usage: prompthost eval --adapter DIR --data FILE [OPTIONS]\n\n"
                 "Evaluates an adapter: loss and perplexity of the scored tokens; for\n"
                 "input/output data also exact match of the greedy output and rank accuracy.\n\n"
              << desc
              << "\nExample:\n  prompthost eval --adapter runs/prefix_tuning "
                 "--data models/demo/tasks/topic/test.jsonl\n";
    return kExitOk;
  }
  if (adapter.empty() || data.empty()) {
    std::fprintf(stderr, "prompthost eval: --adapter and --data are required\n");
    return kExitUsage;
  }
  try {
    trainer::check_int("--batch-size", batch_size, 1);
    trainer::check_int("--threads", threads, 0, trainer::kMaxThreads);
  } catch (const trainer::OptionError& e) {
    std::fprintf(stderr, "prompthost eval: %s\n", e.what());
    return kExitUsage;
  }
  if (!predictions.empty() && vm.count("no-generate")) {
    std::fprintf(stderr, "prompthost eval: --predictions needs generation; drop --no-generate\n");
    return kExitUsage;
  }
  try {
    const host::PluginWatchdog watchdog(plugin_timeout);
    set_num_threads(threads);
    if (model.empty()) model = trainer::adapter_base_model(trainer::read_adapter_info(adapter));
    if (model.empty()) model = bundled_demo_path("hf");
    const Model m = load_model(model);
    const auto tok = load_tokenizer(tokenizer_path(model, tokenizer));
    host::ModelHost model_host(m, tok.get());
    trainer::LoadedAdapter a = trainer::open_adapter(adapter, model_host, plugin_paths);
    const ph_injection_spec spec = a.method->injection();
    const auto parts = a.method->template_text().empty()
                           ? trainer::default_template(spec.n_virtual)
                           : trainer::parse_template(a.method->template_text(), spec.n_virtual);
    trainer::EncodeOptions enc;
    enc.max_length = m.config.max_positions - spec.n_virtual - spec.n_prefix;
    enc.bos_id = m.config.bos_id >= 0 ? m.config.bos_id : tok->bos_id();
    enc.eos_id = m.config.eos_id >= 0 ? m.config.eos_id : tok->eos_id();
    trainer::TaskMap tasks(a.info.task_names);
    const auto examples = trainer::read_jsonl(data);
    std::vector<trainer::Encoded> encoded;
    const std::vector<int64_t> task_ids = tasks.ids(examples, data, false, spec.per_example);
    for (size_t i = 0; i < examples.size(); ++i) {
      encoded.push_back(trainer::encode_example(examples[i], *tok, parts, enc));
      encoded.back().task = task_ids[i];
    }
    trainer::EvalOptions options;
    options.parts = parts;
    options.encode = enc;
    options.batch_size = batch_size;
    options.generate = !vm.count("no-generate");
    const auto r = trainer::evaluate(m, *tok, *a.method, examples, encoded, options);
    std::printf("examples         %d\n", r.examples);
    std::printf("loss             %.4f\n", r.loss);
    std::printf("perplexity       %.3f\n", r.perplexity);
    if (r.has_outputs && options.generate) {
      std::printf("exact match      %.1f%%\n", 100 * r.exact_match);
      std::printf("known outputs    %.1f%% (generated outputs equal to some output in the data)\n",
                  100 * r.known_output);
    }
    if (!predictions.empty()) {
      if (!r.has_outputs)
        throw Error("--predictions needs input/output data; " + data + " has none");
      std::string lines;
      for (size_t i = 0; i < examples.size(); ++i)
        lines += nlohmann::json{{"input", examples[i].input},
                                {"expected", examples[i].output},
                                {"generated", r.generated[i]}}
                     .dump() +
                 "\n";
      trainer::write_file_atomic(predictions, lines);
      std::printf("predictions      %s\n", predictions.c_str());
    }
    if (r.rank_candidates >= 2)
      std::printf("rank accuracy    %.1f%% (%d candidate outputs)\n", 100 * r.rank_accuracy,
                  r.rank_candidates);
    return kExitOk;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "prompthost eval: %s\n", e.what());
    return kExitFailure;
  }
}

}  // namespace ph::cli
