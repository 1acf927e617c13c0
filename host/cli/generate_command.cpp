// `prompthost generate`: continue a prompt with a frozen model, streaming the text.
#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <boost/program_options.hpp>
#include <xtensor/xview.hpp>

#include "host/cli/bundled_demo.h"
#include "host/cli/commands.h"
#include "host/cli/plugin_timeout.h"
#include "host/cli/tokenizer_path.h"
#include "host/plugin/method_instance.h"
#include "host/plugin/plugin_watchdog.h"
#include "host/trainer/adapter_loading.h"
#include "host/trainer/dataset.h"
#include "host/trainer/option_checks.h"
#include "models/common/error.h"
#include "models/engine/model.h"
#include "models/generate/generate.h"
#include "models/generate/text_stream.h"
#include "models/tokenizer/tokenizer.h"

namespace ph::cli {

namespace {

namespace po = boost::program_options;
namespace fs = std::filesystem;

const char kPrefix[] = "prompthost generate: ";

// A command line that parses but asks for something meaningless is an OptionError:
// exit code 2.
using trainer::OptionError;

struct Settings {
  std::string model;
  std::string tokenizer;  // empty: beside the model
  std::string prompt;
  std::string prompt_file;  // --prompt-file: read in run(); "-" is standard input
  GenerateOptions generate;
  bool print_ids = false;
  bool bos = true;
  std::string adapter;  // empty: the frozen model alone
  std::string task;     // multitask adapters
  std::vector<std::string> plugin_paths;
  double plugin_timeout = 0;  // seconds; 0: no watchdog
  bool model_given = false;
};

po::options_description describe_options(Settings& s, std::string& seed, double& temperature,
                                         double& top_p) {
  po::options_description desc("Options");
  // clang-format off
  desc.add_options()
    ("help,h", "show this help and exit")
    ("model", po::value(&s.model)->default_value(bundled_demo_path("hf"), "the bundled demo"),
     "a Hugging Face model folder (config.json + model.safetensors) or a llama2.c .bin "
     "checkpoint; default: the bundled demo model, models/demo/hf")
    ("tokenizer", po::value(&s.tokenizer),
     "tokenizer file (tokenizer.json, tokenizer.model or tokenizer.bin); default: the "
     "model folder's, or the tokenizer.bin beside a .bin checkpoint")
    ("prompt", po::value(&s.prompt), "the text to continue (this or --prompt-file is required)")
    ("prompt-file", po::value(&s.prompt_file), "read the text to continue from this file "
     "(- for standard input), without one final newline")
    ("adapter", po::value(&s.adapter), "an adapter folder (PromptHost's or PEFT's): its soft prompt "
     "is applied; --model then defaults to the adapter's base model if it is a path here")
    ("task", po::value(&s.task), "the task (name or index) of a multitask adapter")
    ("plugin-path", po::value(&s.plugin_paths)->composing(), "another folder to look for plugins in")
    ("plugin-timeout", plugin_timeout_value(s.plugin_timeout), kPluginTimeoutHelp)
    ("max-new-tokens", po::value(&s.generate.max_new_tokens)->default_value(64),
     "stop after this many tokens (also stops at EOS, at BOS with a llama2.c .bin as "
     "run.c does, and at the end of the context)")
    ("temperature", po::value(&temperature)->default_value(0.8, "0.8"),
     "sampling temperature; 0 is greedy (deterministic argmax)")
    ("top-k", po::value(&s.generate.sampling.top_k)->default_value(0),
     "sample only among the K most likely tokens; 0 keeps all")
    ("top-p", po::value(&top_p)->default_value(0.95, "0.95"),
     "nucleus sampling: only among the most likely tokens holding probability P; 1 keeps all")
    ("seed", po::value(&seed)->default_value("0"),
     "random seed (a non-negative integer); the same seed gives the same text on any platform")
    ("print-ids", po::bool_switch(&s.print_ids),
     "after the text, print the generated token ids space-separated on a line of their own")
    ("no-bos", "do not prepend the BOS token to the prompt");
  // clang-format on
  return desc;
}

void print_help(const po::options_description& desc) {
  std::cout
      << "Usage: prompthost generate [--model PATH] --prompt TEXT | --prompt-file FILE "
         "[OPTIONS]\n\n"
         "Continues TEXT with a frozen model (KV-cached decoding) and prints the\n"
         "continuation as it is generated.\n\n"
      << desc
      << "\nExamples:\n"
         "  prompthost generate --prompt \"The computer\" --max-new-tokens 40\n"
         "  prompthost generate --model models/demo/fortune-llama.bin --prompt \"Q: What "
         "is\" --temperature 0 --print-ids\n"
         "  prompthost generate --adapter runs/prefix_tuning --temperature 0 \\\n"
         "      --prompt $'Quote: Never trust a computer you can\\'t repair yourself.\\nTopic:'\n";
}

// The biggest --prompt-file read: far beyond any context, small enough to hold.
constexpr size_t kMaxPromptFileBytes = size_t{16} << 20;

// The text of --prompt-file (standard input for "-") without one final newline (which
// an editor or `echo` adds; llama.cpp's --file drops it too).
std::string read_prompt_file(const std::string& path) {
  const std::string name = path == "-" ? "standard input" : path;
  std::ifstream file;
  std::istream* in = &std::cin;
  if (path != "-") {
    if (fs::is_directory(path)) throw Error(path + ": --prompt-file is a folder, not a file");
    file.open(path, std::ios::binary);
    if (!file) throw Error(path + ": cannot open the --prompt-file (" + std::strerror(errno) + ")");
    in = &file;
  }
  std::string text;
  std::vector<char> buffer(1 << 16);
  while (in->read(buffer.data(), (std::streamsize)buffer.size()) || in->gcount() > 0) {
    text.append(buffer.data(), (size_t)in->gcount());
    if (text.size() > kMaxPromptFileBytes)
      throw Error(name + ": the --prompt-file holds more than 16 MiB, far more than a context");
  }
  if (in->bad()) throw Error(name + ": cannot read the --prompt-file");
  if (!text.empty() && text.back() == '\n') text.pop_back();
  if (!text.empty() && text.back() == '\r') text.pop_back();
  return text;
}

// Parses argv into settings; returns false after printing --help.
bool parse(int argc, char** argv, Settings& s) {
  std::string seed;
  double temperature = 0, top_p = 0;
  const po::options_description desc = describe_options(s, seed, temperature, top_p);
  po::variables_map vm;
  // No positional arguments: a stray word (a forgotten --prompt) is a usage error.
  const po::positional_options_description none;
  po::store(po::command_line_parser(argc, argv).options(desc).positional(none).run(), vm);
  if (vm.count("help")) {
    print_help(desc);
    return false;
  }
  po::notify(vm);

  if (vm.count("prompt") && vm.count("prompt-file"))
    throw OptionError("give --prompt or --prompt-file, not both");
  if (!vm.count("prompt") && !vm.count("prompt-file"))
    throw OptionError("--prompt (or --prompt-file) is required");
  trainer::check_int("--max-new-tokens", s.generate.max_new_tokens, 0);
  trainer::check_number("--temperature", temperature, 0.0, 1e6);  // 0 is greedy
  trainer::check_int("--top-k", s.generate.sampling.top_k, 0);    // 0 keeps all
  if (!(top_p > 0 && top_p <= 1)) throw OptionError("--top-p must be in (0, 1]");
  s.generate.sampling.temperature = static_cast<float>(temperature);
  s.generate.sampling.top_p = static_cast<float>(top_p);
  s.generate.seed = trainer::parse_seed("--seed", seed);
  s.bos = !vm.count("no-bos");
  s.model_given = !vm["model"].defaulted();
  return true;
}

// The adapter's injection as generation uses it: the part every request shares (prefix
// and prepended virtual tokens) goes to the injection cache; a template's virtual tokens
// inside the prompt stay as slots in the prompt, with their rows in options.
struct AdapterPrompt {
  Injection cached;
  std::vector<int32_t> prompt;
  xt::xtensor<float, 2> virtual_rows;
};

AdapterPrompt apply_adapter(const Settings& s, const Model& model, const Tokenizer& tokenizer) {
  host::ModelHost model_host(model, &tokenizer);
  trainer::LoadedAdapter a = trainer::open_adapter(s.adapter, model_host, s.plugin_paths);
  const ph_injection_spec spec = a.method->injection();
  std::vector<int64_t> tasks;
  if (!s.task.empty() || spec.per_example) {
    trainer::TaskMap map(a.info.task_names);
    trainer::Example ex;
    ex.task = s.task;
    ex.line = 0;
    if (s.task.empty()) throw Error(s.adapter + ": a multitask adapter needs --task NAME or index");
    tasks.push_back(map.id(ex, "--task", false));
  }
  Injection inj = a.method->forward(1, tasks, false);
  const auto parts = a.method->template_text().empty()
                         ? trainer::default_template(spec.n_virtual)
                         : trainer::parse_template(a.method->template_text(), spec.n_virtual);
  trainer::Example ex;
  ex.input = s.prompt;
  ex.has_output = true;  // the output is what we generate: keep the prompt part only
  trainer::EncodeOptions enc;
  enc.bos_id = s.bos ? (model.config.bos_id >= 0 ? model.config.bos_id : tokenizer.bos_id()) : -1;
  const trainer::Encoded e = trainer::encode_example(ex, tokenizer, parts, enc);
  AdapterPrompt out;
  out.prompt.assign(e.sequence.tokens.begin(), e.sequence.tokens.begin() + e.prompt_length);
  int lead = 0;  // the virtual tokens every request starts with
  while (lead < (int)out.prompt.size() && out.prompt[lead] == virtual_slot(lead)) ++lead;
  out.cached.prefix = inj.prefix;
  if (spec.n_virtual > 0 && lead == spec.n_virtual) {
    out.cached.virtual_tokens = inj.virtual_tokens;
    out.prompt.erase(out.prompt.begin(), out.prompt.begin() + lead);
  } else if (spec.n_virtual > 0) {
    out.virtual_rows = xt::view(inj.virtual_tokens, 0, xt::all(), xt::all());
  }
  return out;
}

int run(Settings s) {
  if (!s.prompt_file.empty()) s.prompt = read_prompt_file(s.prompt_file);
  std::string model_path = s.model;
  if (!s.adapter.empty() && !s.model_given) {
    const std::string base = trainer::adapter_base_model(trainer::read_adapter_info(s.adapter));
    if (!base.empty()) model_path = base;
  }
  const std::unique_ptr<Tokenizer> tokenizer =
      load_tokenizer(tokenizer_path(model_path, s.tokenizer));
  const Model model = load_model(model_path);
  const ModelConfig& c = model.config;
  if (tokenizer->vocab_size() > c.vocab_size)
    throw Error("the tokenizer has " + std::to_string(tokenizer->vocab_size()) +
                " tokens but the model only " + std::to_string(c.vocab_size) +
                ": they do not belong together");

  std::vector<int32_t> prompt = tokenizer->encode(s.prompt);
  const int bos = c.bos_id >= 0 ? c.bos_id : tokenizer->bos_id();
  if (s.bos && bos >= 0) prompt.insert(prompt.begin(), bos);
  GenerateOptions options = s.generate;
  InjectionCache injection;
  if (!s.adapter.empty()) {
    AdapterPrompt ap = apply_adapter(s, model, *tokenizer);
    prompt = std::move(ap.prompt);
    options.virtual_tokens = std::move(ap.virtual_rows);
    injection = InjectionCache(model, ap.cached);
  }

  options.stop_ids = stop_ids(c, tokenizer->eos_id());
  std::vector<int32_t> text_ids;  // what the stream decodes after: the real tokens
  for (int32_t t : prompt)
    if (!is_virtual(t)) text_ids.push_back(t);
  TextStream stream(*tokenizer, text_ids);
  options.on_token = [&stream](int32_t token, const xt::xtensor<float, 1>&) {
    const std::string text = stream.push(token);
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::fflush(stdout);
  };

  const std::vector<int32_t> ids = generate(model, injection, prompt, options);
  const std::string rest = stream.finish();
  std::fwrite(rest.data(), 1, rest.size(), stdout);
  std::fputc('\n', stdout);
  if (s.print_ids) {
    std::ostringstream line;
    for (size_t i = 0; i < ids.size(); ++i) line << (i ? " " : "") << ids[i];
    std::printf("%s\n", line.str().c_str());
  }
  std::fflush(stdout);

  const auto& stops = options.stop_ids;
  const bool stopped_early =
      static_cast<int>(ids.size()) < options.max_new_tokens &&
      (ids.empty() || std::find(stops.begin(), stops.end(), ids.back()) == stops.end());
  if (stopped_early)
    std::fprintf(stderr, "%sstopped at the end of the model's context (%d positions)\n", kPrefix,
                 c.max_positions);
  return kExitOk;
}

}  // namespace

int generate_command(int argc, char** argv) {
  Settings settings;
  try {
    if (!parse(argc, argv, settings)) return kExitOk;
  } catch (const po::error& e) {
    std::fprintf(stderr, "%s%s\n(prompthost generate --help lists the options)\n", kPrefix,
                 e.what());
    return kExitUsage;
  } catch (const OptionError& e) {
    std::fprintf(stderr, "%s%s\n(prompthost generate --help lists the options)\n", kPrefix,
                 e.what());
    return kExitUsage;
  }
  try {
    const host::PluginWatchdog watchdog(settings.plugin_timeout);
    return run(settings);
  } catch (const std::exception& e) {  // ph::Error, and bad_alloc & co. from the engine
    std::fflush(stdout);
    std::fprintf(stderr, "%s%s\n", kPrefix, e.what());
    return kExitFailure;
  }
}

}  // namespace ph::cli
