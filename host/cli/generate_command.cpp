// `prompthost generate`: continue a prompt with a frozen model, streaming the text; a
// classification model (SEQ_CLS) prints the predicted class instead.
#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
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
#include "host/trainer/data_tokenizer.h"
#include "host/trainer/dataset.h"
#include "host/trainer/generation_prompt.h"
#include "host/trainer/option_checks.h"
#include "host/trainer/task_encoding.h"
#include "models/common/error.h"
#include "models/engine/model.h"
#include "models/generate/generate.h"
#include "models/generate/seq2seq_generate.h"
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
  std::string prompt_file;          // --prompt-file: read in run(); "-" is standard input
  std::vector<int32_t> prompt_ids;  // --prompt-ids: used verbatim (no BOS), no tokenizer needed
  bool ids_prompt = false;
  std::string task_type;  // --task-type; "" = the model's
  bool json = false;      // SEQ_CLS: the class and every class's probability as JSON
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
                                         double& top_p, std::string& prompt_ids) {
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
    ("prompt-ids", po::value(&prompt_ids), "the prompt as token ids, space-separated, used as "
     "given (no BOS); needs no tokenizer (the ids are printed then)")
    ("task-type", po::value(&s.task_type), "CAUSAL_LM, SEQ_2_SEQ_LM or SEQ_CLS; default: the "
     "model's (config.json architectures); SEQ_CLS prints the predicted class")
    ("json", po::bool_switch(&s.json), "SEQ_CLS: print {\"label\", \"probabilities\"} as JSON")
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
         "| --prompt-ids IDS [OPTIONS]\n\n"
         "Continues TEXT with a frozen model (KV-cached decoding) and prints the\n"
         "continuation as it is generated; with a classification model (SEQ_CLS) prints\n"
         "the predicted class.\n\n"
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
  std::string seed, prompt_ids;
  double temperature = 0, top_p = 0;
  const po::options_description desc = describe_options(s, seed, temperature, top_p, prompt_ids);
  po::variables_map vm;
  // No positional arguments: a stray word (a forgotten --prompt) is a usage error.
  const po::positional_options_description none;
  po::store(po::command_line_parser(argc, argv).options(desc).positional(none).run(), vm);
  if (vm.count("help")) {
    print_help(desc);
    return false;
  }
  po::notify(vm);

  const int prompts =
      (int)vm.count("prompt") + (int)vm.count("prompt-file") + (int)vm.count("prompt-ids");
  if (prompts > 1)
    throw OptionError("give --prompt or --prompt-file, not both (or --prompt-ids alone)");
  if (prompts == 0) throw OptionError("--prompt (or --prompt-file, --prompt-ids) is required");
  if (vm.count("prompt-ids")) {
    s.ids_prompt = true;
    std::istringstream in(prompt_ids);
    std::string word;
    while (in >> word) {
      if (word.empty() || word.size() > 9 ||
          word.find_first_not_of("0123456789") != std::string::npos)
        throw OptionError("--prompt-ids: \"" + word + "\" is not a token id");
      s.prompt_ids.push_back((int32_t)std::stol(word));
    }
    if (s.prompt_ids.empty()) throw OptionError("--prompt-ids is empty");
  }
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
// inside the prompt stay as slots in the prompt, with their rows in options. Encoded by
// trainer::GenerationEncoding, as the server encodes its requests.
struct AdapterPrompt {
  Injection cached;
  std::vector<int32_t> prompt;
  xt::xtensor<float, 2> virtual_rows;
};

// The request as one example: the text of --prompt, or the ids of --prompt-ids.
trainer::Example request_example(const Settings& s) {
  trainer::Example ex;
  ex.input = s.prompt;
  ex.ids = s.ids_prompt;
  ex.input_ids = s.prompt_ids;
  return ex;
}

trainer::GenerationInput generation_input(const Settings& s) {
  trainer::GenerationInput in;
  in.is_ids = s.ids_prompt;
  in.text = s.prompt;
  in.ids = s.prompt_ids;
  in.bos = s.bos;
  return in;
}

AdapterPrompt apply_adapter(const Settings& s, const Model& model, const Tokenizer* tokenizer) {
  host::ModelHost model_host(model, tokenizer);
  trainer::LoadedAdapter a = trainer::open_adapter(s.adapter, model_host, s.plugin_paths);
  const trainer::GenerationEncoding encoding(model, a, tokenizer);
  const Injection inj = a.method->forward(1, trainer::request_tasks(a, s.task, "--task"), false);
  AdapterPrompt out;
  out.prompt = encoding.encode(generation_input(s), tokenizer, "--prompt");
  out.cached = encoding.cached(inj);
  out.virtual_rows = encoding.prompt_rows(inj);
  return out;
}

// SEQ_CLS: the prompt classified (with the adapter's prompt and head, or the model's
// head alone); prints the class name, or with --json the class and each probability.
int classify(const Settings& s, const Model& model, const Tokenizer* tokenizer) {
  host::ModelHost model_host(model, tokenizer);
  std::unique_ptr<trainer::LoadedAdapter> a;
  ph_injection_spec spec{};
  Injection inj;
  if (!s.adapter.empty()) {
    a = std::make_unique<trainer::LoadedAdapter>(
        trainer::open_adapter(s.adapter, model_host, s.plugin_paths));
    spec = a->method->injection();
    trainer::check_method_for_task(spec, TaskType::kSeqCls, a->method->library().name());
    inj = a->method->forward(1, trainer::request_tasks(*a, s.task, "--task"), false);
    if (!a->head.empty()) inj.head = a->head.values();
  }
  trainer::Example ex = request_example(s);
  ex.has_label = true;  // any class: only the logits are read
  ex.label = model.config.labels.at(0);
  const trainer::TaskEncoding enc = trainer::task_encoding(
      model, TaskType::kSeqCls, spec, trainer::default_template(spec.n_virtual), tokenizer, 0);
  const trainer::Encoded e = trainer::encode_for_task(ex, tokenizer, enc, "--prompt");
  PassOptions options;
  options.all_logits = true;
  TrainingPass pass(model, options);
  pass.forward({e.sequence}, inj);
  const xt::xtensor<float, 2>& logits = pass.logits().at(0);
  std::vector<double> p(logits.begin(), logits.end());
  const double top = *std::max_element(p.begin(), p.end());
  double sum = 0.0;
  for (double& v : p) sum += (v = std::exp(v - top));
  for (double& v : p) v /= sum;
  const size_t best = std::max_element(p.begin(), p.end()) - p.begin();
  const auto& labels = model.config.labels;
  if (s.json) {
    nlohmann::json probabilities = nlohmann::json::object();
    for (size_t k = 0; k < p.size() && k < labels.size(); ++k) probabilities[labels[k]] = p[k];
    std::printf("%s\n", nlohmann::json{{"label", labels.at(best)}, {"probabilities", probabilities}}
                            .dump()
                            .c_str());
  } else {
    std::printf("%s\n", labels.at(best).c_str());
  }
  return kExitOk;
}

// Prints generated tokens as they come (decoded after `context`, the prompt's real
// tokens) when there is a tokenizer; at the end the rest of the text, and the ids when
// asked for or when there is no tokenizer to decode them.
class OutputStream {
 public:
  OutputStream(const Tokenizer* tokenizer, const std::vector<int32_t>& context,
               GenerateOptions& options) {
    if (tokenizer) stream_ = std::make_unique<TextStream>(*tokenizer, context);
    options.on_token = [this](int32_t token, const xt::xtensor<float, 1>&) {
      if (!stream_) return;
      const std::string text = stream_->push(token);
      std::fwrite(text.data(), 1, text.size(), stdout);
      std::fflush(stdout);
    };
  }

  void finish(const std::vector<int32_t>& ids, bool print_ids) {
    if (stream_) {
      const std::string rest = stream_->finish();
      std::fwrite(rest.data(), 1, rest.size(), stdout);
      std::fputc('\n', stdout);
    }
    if (print_ids || !stream_) {
      std::ostringstream line;
      for (size_t i = 0; i < ids.size(); ++i) line << (i ? " " : "") << ids[i];
      std::printf("%s\n", line.str().c_str());
    }
    std::fflush(stdout);
  }

 private:
  std::unique_ptr<TextStream> stream_;
};

// An encoder-decoder (SEQ_2_SEQ_LM): the prompt (with the adapter's virtual tokens, encoded
// as in training) goes to the encoder, which runs once; the decoder generates from its
// start token with the key/value cache and cross-attention (generate_seq2seq).
int generate_encoder_decoder(const Settings& s, const Model& model, const Tokenizer* tokenizer) {
  Injection injection;
  ph_injection_spec spec{};
  spec.struct_size = sizeof spec;
  std::string template_text;
  std::unique_ptr<host::ModelHost> model_host;
  std::optional<trainer::LoadedAdapter> adapter;
  std::vector<int64_t> tasks;
  if (!s.adapter.empty()) {
    model_host = std::make_unique<host::ModelHost>(model, tokenizer);
    adapter.emplace(trainer::open_adapter(s.adapter, *model_host, s.plugin_paths));
    spec = adapter->method->injection();
    tasks = trainer::request_tasks(*adapter, s.task, "--task");
    injection = adapter->method->forward(1, tasks, false);
  }
  trainer::Example ex = request_example(s);
  // The output is what we generate: a placeholder target (one token, or the EOS the
  // encoding appends to text) lets the training encoding run; only the encoder's tokens
  // and the decoder's virtual lead are used.
  ex.has_output = true;
  ex.output_ids = {0};
  trainer::TaskEncoding enc = trainer::task_encoding(model, TaskType::kSeq2SeqLm, spec,
                                                     trainer::default_template(spec.n_virtual),
                                                     tokenizer, 0);
  const trainer::Encoded e = trainer::encode_for_task(ex, tokenizer, enc, "--prompt");
  Seq2SeqInput input;
  input.encoder = e.sequence.tokens;
  for (int32_t t : e.sequence.decoder_tokens)  // multitask: the decoder's virtual lead
    if (is_virtual(t)) input.decoder_lead.push_back(t);

  GenerateOptions options = s.generate;
  options.stop_ids = stop_ids(model.config, tokenizer ? tokenizer->eos_id() : -1);
  OutputStream out(tokenizer, {}, options);
  out.finish(generate_seq2seq(model, injection, input, options), s.print_ids);
  return kExitOk;
}

int run(Settings s) {
  if (!s.prompt_file.empty()) s.prompt = read_prompt_file(s.prompt_file);
  std::string model_path = s.model;
  if (!s.adapter.empty() && !s.model_given) {
    const std::string base = trainer::adapter_base_model(trainer::read_adapter_info(s.adapter));
    if (!base.empty()) model_path = base;
  }
  const std::unique_ptr<Tokenizer> tokenizer =
      trainer::load_data_tokenizer(tokenizer_path(model_path, s.tokenizer), s.ids_prompt);
  Model model = load_model(model_path);
  model.config.task = trainer::resolve_task_type(model.config, s.task_type, model_path);
  const ModelConfig& c = model.config;
  check_tokenizer_fits(tokenizer.get(), c);
  if (c.task == TaskType::kSeqCls) return classify(s, model, tokenizer.get());
  if (s.json) throw OptionError("--json is for classification (SEQ_CLS) models");
  if (c.task == TaskType::kSeq2SeqLm) return generate_encoder_decoder(s, model, tokenizer.get());

  std::vector<int32_t> prompt =
      trainer::base_generation_prompt(c, tokenizer.get(), generation_input(s));
  GenerateOptions options = s.generate;
  InjectionCache injection;
  if (!s.adapter.empty()) {
    AdapterPrompt ap = apply_adapter(s, model, tokenizer.get());
    prompt = std::move(ap.prompt);
    options.virtual_tokens = std::move(ap.virtual_rows);
    injection = InjectionCache(model, ap.cached);
  }

  options.stop_ids = stop_ids(c, tokenizer ? tokenizer->eos_id() : -1);
  std::vector<int32_t> text_ids;  // what the stream decodes after: the real tokens
  for (int32_t t : prompt)
    if (!is_virtual(t)) text_ids.push_back(t);
  OutputStream out(tokenizer.get(), text_ids, options);
  const std::vector<int32_t> ids = generate(model, injection, prompt, options);
  out.finish(ids, s.print_ids);

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
  } catch (const OptionError& e) {  // an option that does not fit the model (--json)
    std::fprintf(stderr, "%s%s\n", kPrefix, e.what());
    return kExitUsage;
  } catch (const std::exception& e) {  // ph::Error, and bad_alloc & co. from the engine
    std::fflush(stdout);
    std::fprintf(stderr, "%s%s\n", kPrefix, e.what());
    return kExitFailure;
  }
}

}  // namespace ph::cli
