// `prompthost-validate PLUGIN.so`: the conformance runner for method plugins.
//
// Runs every check (check.h) in its own forked child with a timeout, prints one line per
// check (PASS name / FAIL name: why / SKIP name: why, notes indented below) and a closing
// line "N passed, N failed, N skipped"; exits 1 when any check failed (crashes and
// timeouts are failures), 2 on a usage error, 0 otherwise.
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <regex>
#include <string>
#include <vector>

#include <boost/program_options.hpp>
#include <nlohmann/json.hpp>

#include "host/trainer/option_checks.h"
#include "host/validate/check.h"
#include "host/validate/runner.h"

namespace po = boost::program_options;

namespace ph::validate {

const std::vector<Check>& all_checks() {
  static const std::vector<Check> checks = {
      {"symbols", "an ELF shared object exporting ph_plugin_entry_v1 (and nothing else)", false,
       check_symbols},
      {"handshake", "loads, ABI major and table sizes, init with this and with a newer host", false,
       check_handshake},
      {"metadata", "descriptor name, peft_type, version, description, option declarations", true,
       check_metadata},
      {"bad_configs", "bad option values rejected naming the option; default config creates", true,
       check_bad_configs},
      {"gradient",
       "parameter gradients match central finite differences of the loss (per task type)", true,
       per_task_type<check_gradient>},
      {"parameters",
       "named, finite, positive-shaped parameters; a usable injection spec (per task type)", true,
       per_task_type<check_parameters>},
      {"state_round_trip",
       "parameters saved and loaded into another instance: same bytes and "
       "same forward output (per task type)",
       true, per_task_type<check_state_round_trip>},
      {"determinism",
       "same seed, same parameters and outputs; another seed, other parameters (per task type)",
       true, per_task_type<check_determinism>},
      {"export",
       "export_adapter then import_adapter gives the same forward output; the task type's "
       "fields (per task type)",
       true, per_task_type<check_export>},
      {"load_unload", "20 load/create/forward/destroy/unload cycles; the library is unmapped", true,
       check_load_unload},
      {"random_batches",
       "random batch sizes and task ids: forward/backward stay finite (per task type)", true,
       per_task_type<check_random_batches>},
      // ABI 1.2: skipped when the plugin does not use the feature.
      {"adapter_prompts",
       "adapter prompts: shapes, gradients of prompts and gates through the engine and of "
       "the parameters through backward_injection match finite differences",
       true, check_adapter_prompts},
      {"score_labels",
       "rewritten labels in the vocabulary or -100, weights finite and >= 0, deterministic, "
       "accepted by the engine",
       true, check_score_labels},
      {"after_step", "after a large optimizer step on a copy, after_step leaves finite parameters",
       true, check_after_step},
      {"teacher",
       "the distillation teacher: top_k >= 1, finite temperature, context ids in the "
       "vocabulary, constant",
       true, check_teacher},
  };
  return checks;
}

}  // namespace ph::validate

namespace {

using ph::validate::Result;
using ph::validate::Status;

constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

const char* const kUsage =
    "Usage: prompthost-validate PLUGIN.so [options]\n\n"
    "Checks that a PromptHost method plugin follows the plugin ABI: one line per check\n"
    "(PASS name / FAIL name: why / SKIP name: why), then \"N passed, N failed, N skipped\".\n"
    "Exit status: 0 all passed or skipped, 1 a check failed (crashes and timeouts fail),\n"
    "2 usage error.\n\nOptions";

struct Options {
  std::string plugin;
  std::string seed_text = "1";
  uint64_t seed = 1;
  std::vector<std::string> sets;
  std::string only, exclude;
  std::regex only_re, exclude_re;
  bool in_process = false;
  bool json = false;
  bool list = false;
  double timeout = 60.0;
};

// Parses the command line; returns -1 to go on, else the exit code.
int parse(int argc, char** argv, Options& o) {
  po::options_description visible(kUsage);
  auto add = visible.add_options();
  add("help,h", "show this help");
  add("seed", po::value(&o.seed_text)->default_value(o.seed_text),
      "seed of the models, batches and instances (printed with every failure)");
  add("set", po::value(&o.sets)->composing(),
      "key=value: validate with this option value instead of its default (repeatable)");
  add("only", po::value(&o.only), "run only the checks whose name matches this regex");
  add("exclude", po::value(&o.exclude), "skip the checks whose name matches this regex");
  add("in-process", po::bool_switch(&o.in_process),
      "run the checks in this process (for a debugger; a crash ends the run)");
  add("json", po::bool_switch(&o.json), "print the report as one JSON object");
  add("timeout", po::value(&o.timeout)->default_value(o.timeout),
      "seconds each check may take (forked mode)");
  add("list", po::bool_switch(&o.list), "list the checks and exit");
  po::options_description hidden;
  hidden.add_options()("plugin", po::value(&o.plugin));
  po::options_description all;
  all.add(visible).add(hidden);
  po::positional_options_description positional;
  positional.add("plugin", 1);
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(argc, argv).options(all).positional(positional).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    std::cerr << "prompthost-validate: " << e.what() << "\n\n" << visible << "\n";
    return kExitUsage;
  }
  if (vm.count("help")) {
    std::cout << visible
              << "\nExample:\n  prompthost-validate build/plugins/ph_prompt_tuning.so "
                 "--only 'gradient|export'\n";
    return kExitOk;
  }
  if (o.list) {
    for (const auto& c : ph::validate::all_checks()) std::printf("%-17s %s\n", c.name, c.summary);
    return kExitOk;
  }
  if (o.plugin.empty()) {
    std::cerr << "prompthost-validate: no plugin given\n\n" << visible << "\n";
    return kExitUsage;
  }
  struct stat st;
  if (stat(o.plugin.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
    std::cerr << "prompthost-validate: no such file: " << o.plugin << "\n";
    return kExitUsage;
  }
  try {
    o.seed = ph::trainer::parse_seed("--seed", o.seed_text);
    ph::trainer::check_number("--timeout", o.timeout, 1e-6, 1e6);  // seconds
  } catch (const ph::trainer::OptionError& e) {
    std::cerr << "prompthost-validate: " << e.what() << "\n";
    return kExitUsage;
  }
  try {
    o.only_re = std::regex(o.only);
    o.exclude_re = std::regex(o.exclude);
  } catch (const std::regex_error& e) {
    std::cerr << "prompthost-validate: bad --only or --exclude regex: " << e.what() << "\n";
    return kExitUsage;
  }
  return -1;
}

bool selected(const std::string& name, const Options& o) {
  if (!o.only.empty() && !std::regex_search(name, o.only_re)) return false;
  return o.exclude.empty() || !std::regex_search(name, o.exclude_re);
}

// `text` as one shell word, for the command line printed to rerun a check.
std::string shell_word(const std::string& text) {
  if (!text.empty() && text.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                              "0123456789_./=:,+-@%") == std::string::npos)
    return text;
  std::string quoted = "'";
  for (char c : text) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return quoted + "'";
}

void print_text(FILE* out, const Result& r) {
  std::fprintf(out, "%s %s", status_word(r.status), r.name.c_str());
  if (!r.message.empty()) std::fprintf(out, ": %s", r.message.c_str());
  std::fprintf(out, "\n");
  for (const auto& note : r.notes) std::fprintf(out, "  %s\n", note.c_str());
  std::fflush(out);
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  if (const int code = parse(argc, argv, o); code >= 0) return code;

  // The report owns stdout; anything else written to stdout (by a plugin) goes to stderr.
  FILE* out = fdopen(dup(STDOUT_FILENO), "w");
  if (!out) return kExitFailure;
  dup2(STDERR_FILENO, STDOUT_FILENO);

  const ph::validate::Context ctx{o.plugin, o.seed, o.sets};
  std::string sets;
  for (const auto& s : o.sets) sets += " --set " + shell_word(s);
  if (!o.json)
    std::fprintf(out, "prompthost-validate %s%s (seed %llu)\n", shell_word(o.plugin).c_str(),
                 sets.c_str(), (unsigned long long)o.seed);

  std::vector<Result> results;
  bool handshake_failed = false;
  for (const auto& check : ph::validate::all_checks()) {
    if (!selected(check.name, o)) continue;
    Result r;
    if (check.needs_load && handshake_failed) {
      r.name = check.name;
      r.status = Status::kSkip;
      r.message = "the plugin does not load (see handshake)";
    } else if (o.in_process) {
      r = run_in_process(check, ctx);
    } else {
      r = run_forked(check, ctx, o.timeout);
    }
    if (r.name == "handshake" && r.status == Status::kFail) handshake_failed = true;
    if (!o.json) print_text(out, r);
    results.push_back(std::move(r));
  }

  int passed = 0, failed = 0, skipped = 0;
  for (const auto& r : results)
    (r.status == Status::kPass ? passed : r.status == Status::kFail ? failed : skipped)++;

  if (o.json) {
    nlohmann::json report = {{"plugin", o.plugin},
                             {"seed", o.seed},
                             {"set", o.sets},
                             {"checks", nlohmann::json::array()}};
    for (const auto& r : results)
      report["checks"].push_back({{"name", r.name},
                                  {"status", status_word(r.status)},
                                  {"message", r.message},
                                  {"notes", r.notes},
                                  {"seconds", r.seconds}});
    report["passed"] = passed;
    report["failed"] = failed;
    report["skipped"] = skipped;
    std::fprintf(out, "%s\n", report.dump(2).c_str());
  } else {
    if (failed)
      std::fprintf(out,
                   "rerun a failed check alone: prompthost-validate %s%s --seed %llu --only NAME "
                   "[--in-process]\n",
                   shell_word(o.plugin).c_str(), sets.c_str(), (unsigned long long)o.seed);
    std::fprintf(out, "%d passed, %d failed, %d skipped\n", passed, failed, skipped);
  }
  std::fclose(out);
  return failed ? kExitFailure : kExitOk;
}
