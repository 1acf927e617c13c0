// `prompthost eval`: evaluate an adapter on data (loss, perplexity, exact match, rank
// accuracy; accuracy, macro-F1 and the confusion matrix for classification).
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
#include "host/trainer/data_tokenizer.h"
#include "host/trainer/dataset.h"
#include "host/trainer/evaluation.h"
#include "host/trainer/option_checks.h"
#include "host/trainer/run_files.h"
#include "host/trainer/task_encoding.h"
#include "models/common/error.h"

namespace ph::cli {

namespace po = boost::program_options;

namespace {

void print_report(const trainer::EvalResult& r, bool generated) {
  std::printf("examples         %d\n", r.examples);
  std::printf("loss             %.4f\n", r.loss);
  if (r.classification) {
    std::printf("accuracy         %.1f%%\n", 100 * r.accuracy);
    std::printf("macro-F1         %.4f\n", r.macro_f1);
    return;
  }
  std::printf("perplexity       %.3f\n", r.perplexity);
  if (r.has_outputs && generated) {
    std::printf("exact match      %.1f%%\n", 100 * r.exact_match);
    std::printf("known outputs    %.1f%% (generated outputs equal to some output in the data)\n",
                100 * r.known_output);
  }
}

nlohmann::json report_json(const trainer::EvalResult& r, const std::string& task, bool generated) {
  nlohmann::json j = {{"task_type", task}, {"examples", r.examples}, {"loss", r.loss}};
  if (r.classification) {
    j["accuracy"] = r.accuracy;
    j["macro_f1"] = r.macro_f1;
    j["confusion_matrix"] = {{"labels", r.labels}, {"matrix", r.confusion}};
    return j;
  }
  j["perplexity"] = r.perplexity;
  if (r.has_outputs && generated) {
    j["exact_match"] = r.exact_match;
    j["known_output"] = r.known_output;
  }
  if (r.rank_candidates >= 2) j["rank_accuracy"] = r.rank_accuracy;
  return j;
}

}  // namespace

int eval_command(int argc, char** argv) {
  std::string adapter, model, tokenizer, data, predictions, task_type;
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
    ("task-type", po::value(&task_type), "CAUSAL_LM, SEQ_2_SEQ_LM or SEQ_CLS; default: the model's "
     "(config.json architectures); the adapter's task_type must match")
    ("json", "print the results as one JSON object (classification: with the confusion matrix)")
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
                 "input/output data also exact match of the greedy output and rank accuracy;\n"
                 "for classification (SEQ_CLS) accuracy, macro-F1 and a confusion matrix.\n\n"
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
    Model m = load_model(model);
    m.config.task = trainer::resolve_task_type(m.config, task_type, model);
    const auto examples = trainer::read_jsonl(data);
    const auto tok = trainer::load_data_tokenizer(tokenizer_path(model, tokenizer),
                                                  trainer::all_token_ids(examples));
    host::ModelHost model_host(m, tok.get());
    trainer::LoadedAdapter a = trainer::open_adapter(adapter, model_host, plugin_paths);
    const ph_injection_spec spec = a.method->injection();
    trainer::check_method_for_task(spec, m.config.task, a.method->library().name());
    const auto parts = a.method->template_text().empty()
                           ? trainer::default_template(spec.n_virtual)
                           : trainer::parse_template(a.method->template_text(), spec.n_virtual);
    const trainer::VirtualLayout layout = trainer::virtual_layout(spec, m.config.task);
    trainer::EvalOptions options;
    options.encoding =
        trainer::task_encoding(m, m.config.task, spec, parts, tok.get(),
                               m.config.max_positions - layout.encoder - spec.n_prefix);
    trainer::TaskMap tasks(a.info.task_names);
    std::vector<trainer::Encoded> encoded;
    const std::vector<int64_t> task_ids = tasks.ids(examples, data, false, spec.per_example);
    for (size_t i = 0; i < examples.size(); ++i) {
      encoded.push_back(trainer::encode_for_task(examples[i], tok.get(), options.encoding, data));
      encoded.back().task = task_ids[i];
    }
    options.head = a.head.empty() ? nullptr : &a.head.values();
    options.batch_size = batch_size;
    options.generate = !vm.count("no-generate");
    const auto r = trainer::evaluate(m, tok.get(), *a.method, examples, encoded, options);
    const std::string task = task_type_name(m.config.task);
    if (vm.count("json"))
      std::printf("%s\n", report_json(r, task, options.generate).dump(2).c_str());
    else
      print_report(r, options.generate);
    if (!predictions.empty()) {
      std::string lines;
      if (r.classification) {
        for (size_t i = 0; i < examples.size(); ++i)
          lines += nlohmann::json{{"input", examples[i].input},
                                  {"expected", examples[i].label},
                                  {"predicted", r.labels[r.predicted[i]]}}
                       .dump() +
                   "\n";
      } else {
        if (!r.has_outputs || r.generated.size() != examples.size())
          throw Error("--predictions needs input/output data with generated outputs; " + data +
                      " has none");
        for (size_t i = 0; i < examples.size(); ++i)
          lines += nlohmann::json{{"input", examples[i].input},
                                  {"expected", examples[i].output},
                                  {"generated", r.generated[i]}}
                       .dump() +
                   "\n";
      }
      trainer::write_file_atomic(predictions, lines);
      if (!vm.count("json")) std::printf("predictions      %s\n", predictions.c_str());
    }
    if (r.rank_candidates >= 2 && !vm.count("json"))
      std::printf("rank accuracy    %.1f%% (%d candidate outputs)\n", 100 * r.rank_accuracy,
                  r.rank_candidates);
    return kExitOk;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "prompthost eval: %s\n", e.what());
    return kExitFailure;
  }
}

}  // namespace ph::cli
