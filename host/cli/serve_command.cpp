// `prompthost serve`: an OpenAI-compatible HTTP server over one frozen model and the
// adapters loaded on it, with continuous batching across adapters (docs/serving.md).
// SIGTERM or SIGINT: stop accepting, let running requests finish (up to
// --drain-seconds), exit 0.
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <boost/program_options.hpp>

#include "host/cli/bundled_demo.h"
#include "host/cli/commands.h"
#include "host/cli/tokenizer_path.h"
#include "host/serve/completion_service.h"
#include "host/serve/http_server.h"
#include "host/serve/openai_api.h"
#include "host/trainer/data_tokenizer.h"
#include "host/trainer/option_checks.h"
#include "host/trainer/task_type.h"
#include "models/common/error.h"
#include "models/engine/engine.h"
#include "models/engine/model.h"

namespace ph::cli {

namespace {

namespace po = boost::program_options;
namespace fs = std::filesystem;
using trainer::OptionError;

const char kPrefix[] = "prompthost serve: ";

struct Settings {
  std::string model;
  std::string tokenizer;
  std::string model_name;             // empty: from the path
  std::vector<std::string> adapters;  // NAME=DIR
  std::vector<std::string> plugin_paths;
  serve::HttpServerOptions http;
  serve::SchedulerOptions scheduler;
  std::string api_key;
  int threads = 0;
  double drain_seconds = 30;
  std::string log_file;
  bool model_given = false;
};

po::options_description describe_options(Settings& s, long long& max_body) {
  po::options_description desc("Options");
  // clang-format off
  desc.add_options()
    ("help,h", "show this help and exit")
    ("model", po::value(&s.model)->default_value(bundled_demo_path("hf"), "the bundled demo"),
     "a Hugging Face model folder (a causal LM) or a llama2.c .bin checkpoint")
    ("tokenizer", po::value(&s.tokenizer), "tokenizer file; default: the model folder's, or "
     "the tokenizer.bin beside a .bin (without one, prompts must be token ids)")
    ("model-name", po::value(&s.model_name), "the name requests give as \"model\" for the base "
     "model; default: the model folder's or file's name (\"demo\" for the bundled demo)")
    ("adapter", po::value(&s.adapters)->composing(), "NAME=DIR: serve the adapter in DIR as "
     "model NAME; repeatable (more can be loaded while serving: POST /v1/load_adapter)")
    ("plugin-path", po::value(&s.plugin_paths)->composing(), "another folder to look for plugins in")
    ("host", po::value(&s.http.host)->default_value("127.0.0.1"), "the address to listen on "
     "(the default, loopback, is reachable from this machine only; 0.0.0.0: every interface)")
    ("port", po::value(&s.http.port)->default_value(8000), "the TCP port; 0: any free port "
     "(printed at start)")
    ("api-key", po::value(&s.api_key), "require \"Authorization: Bearer KEY\" on /v1/*; "
     "default: $PROMPTHOST_API_KEY if set, else no key")
    ("max-sequences", po::value(&s.scheduler.max_sequences)->default_value(64),
     "sequences decoded together (the batch); more wait in the queue")
    ("max-queue", po::value(&s.scheduler.max_queue)->default_value(256),
     "sequences waiting for a place in the batch; beyond it requests get 429")
    ("prefill-chunk", po::value(&s.scheduler.prefill_chunk)->default_value(64),
     "prompt tokens of one sequence per decoding step (a long prompt does not stall the others)")
    ("threads", po::value(&s.threads)->default_value(0), "engine threads; 0: all cores")
    ("max-body-bytes", po::value(&max_body)->default_value(1 << 20),
     "the largest request body; beyond it 413")
    ("max-connections", po::value(&s.http.max_connections)->default_value(256),
     "connections served at once (a thread each); beyond it 503")
    ("drain-seconds", po::value(&s.drain_seconds)->default_value(30, "30"),
     "on SIGTERM/SIGINT, how long running requests may take to finish")
    ("log-file", po::value(&s.log_file), "append the request log (one line per request) to "
     "this file instead of standard error");
  // clang-format on
  return desc;
}

void print_help(const po::options_description& desc) {
  std::cout
      << "Usage: prompthost serve [--model PATH] [--adapter NAME=DIR]... [--host ADDR] "
         "[--port N] [--api-key KEY] [OPTIONS]\n\n"
         "Serves the model and its adapters over HTTP with an OpenAI-compatible API:\n"
         "POST /v1/completions, GET /v1/models, POST /v1/load_adapter and\n"
         "/v1/unload_adapter, GET /health, GET /metrics (docs/serving.md). Requests for\n"
         "every adapter are decoded together (continuous batching). SIGTERM or SIGINT\n"
         "stops it: running requests finish first.\n\n"
      << desc
      << "\nExamples:\n"
         "  prompthost serve --port 8000\n"
         "  prompthost serve --model models/demo/hf --adapter topic=runs/prefix_tuning\n"
         "  curl http://127.0.0.1:8000/v1/completions -H 'Content-Type: application/json' \\\n"
         "      -d '{\"model\": \"demo\", \"prompt\": \"The computer\", \"max_tokens\": 20}'\n";
}

bool parse(int argc, char** argv, Settings& s) {
  long long max_body = 0;
  const po::options_description desc = describe_options(s, max_body);
  po::variables_map vm;
  const po::positional_options_description none;
  po::store(po::command_line_parser(argc, argv).options(desc).positional(none).run(), vm);
  if (vm.count("help")) {
    print_help(desc);
    return false;
  }
  po::notify(vm);
  trainer::check_int("--port", s.http.port, 0, 65535);
  trainer::check_int("--max-sequences", s.scheduler.max_sequences, 1, 4096);
  trainer::check_int("--max-queue", s.scheduler.max_queue, 1, 1 << 20);
  trainer::check_int("--prefill-chunk", s.scheduler.prefill_chunk, 1, 1 << 20);
  trainer::check_int("--threads", s.threads, 0, trainer::kMaxThreads);
  trainer::check_int("--max-body-bytes", max_body, 1024, 1LL << 30);
  trainer::check_int("--max-connections", s.http.max_connections, 1, 1 << 16);
  trainer::check_number("--drain-seconds", s.drain_seconds, 0, 24 * 3600);
  for (const std::string& a : s.adapters) {
    const size_t eq = a.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == a.size())
      throw OptionError("--adapter " + a + ": write NAME=DIR");
  }
  s.http.max_body_bytes = (size_t)max_body;
  if (!vm.count("api-key"))
    if (const char* key = std::getenv("PROMPTHOST_API_KEY")) s.api_key = key;
  s.model_given = !vm["model"].defaulted();
  return true;
}

std::string default_model_name(const Settings& s) {
  if (!s.model_name.empty()) return s.model_name;
  if (!s.model_given) return "demo";
  fs::path p = fs::path(s.model).lexically_normal();
  if (p.filename().empty()) p = p.parent_path();
  return p.stem().string();
}

// The request log: standard error, or --log-file; one line at a time.
class RequestLog {
 public:
  explicit RequestLog(const std::string& path) {
    if (path.empty()) return;
    file_.open(path, std::ios::app);
    if (!file_) throw Error(path + ": cannot open the --log-file for appending");
  }
  void write(const std::string& line) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (file_.is_open()) {
      file_ << line << '\n';
      file_.flush();
    } else {
      std::fprintf(stderr, "%s\n", line.c_str());
    }
  }

 private:
  std::mutex mutex_;
  std::ofstream file_;
};

// SIGTERM and SIGINT: their handler writes the signal's number to a pipe the main thread
// reads. (A handler rather than sigwait(): threads started before main(), OpenBLAS's,
// do not block the signals, and the kernel may deliver them to any such thread.)
int g_stop_pipe[2] = {-1, -1};

extern "C" void on_stop_signal(int signal) {
  const unsigned char number = (unsigned char)signal;
  [[maybe_unused]] const ssize_t n = ::write(g_stop_pipe[1], &number, 1);
}

void install_stop_handlers() {
  if (::pipe(g_stop_pipe) != 0) throw Error(std::string("pipe: ") + std::strerror(errno));
  struct sigaction action = {};
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  sigaction(SIGTERM, &action, nullptr);
  sigaction(SIGINT, &action, nullptr);
}

// Blocks until SIGTERM or SIGINT; returns which.
int wait_for_stop_signal() {
  unsigned char number = 0;
  while (::read(g_stop_pipe[0], &number, 1) != 1)
    if (errno != EINTR)
      throw Error(std::string("reading the signal pipe: ") + std::strerror(errno));
  return number;
}

int run(const Settings& s) {
  install_stop_handlers();
  set_num_threads(s.threads);
  RequestLog log(s.log_file);
  const std::unique_ptr<Tokenizer> tokenizer =
      trainer::load_data_tokenizer(tokenizer_path(s.model, s.tokenizer), true);
  Model model = load_model(s.model);
  model.config.task = trainer::resolve_task_type(model.config, "CAUSAL_LM", s.model);
  check_tokenizer_fits(tokenizer.get(), model.config);

  serve::Metrics metrics;
  const std::unique_ptr<serve::CompletionService> service = serve::make_model_service(
      model, tokenizer.get(), default_model_name(s), s.plugin_paths, s.scheduler, metrics);
  for (const std::string& a : s.adapters) {
    const size_t eq = a.find('=');
    service->load(a.substr(0, eq), a.substr(eq + 1));
  }
  serve::ApiOptions api_options;
  api_options.api_key = s.api_key;
  api_options.limits.max_choices =
      std::min(api_options.limits.max_choices, s.scheduler.max_sequences);
  serve::OpenAiApi api(*service, metrics, api_options,
                       [&log](const std::string& line) { log.write(line); });
  serve::HttpServer http(
      s.http, [&api](serve::HttpExchange& e) { api.handle(e); },
      [&api](const std::string& remote, int status, const std::string& why) {
        api.log_refusal(remote, status, why);
      });
  std::fprintf(stderr, "%slistening on http://%s:%d (model \"%s\", %zu adapter(s))%s\n", kPrefix,
               s.http.host.c_str(), http.port(), service->base_name().c_str(),
               service->adapters().size(), s.api_key.empty() ? "" : ", API key required");
  std::fflush(stderr);

  const int signal_number = wait_for_stop_signal();
  std::fprintf(stderr, "%s%s: no new requests; letting running ones finish (up to %gs)\n", kPrefix,
               signal_number == SIGINT ? "SIGINT" : "SIGTERM", s.drain_seconds);
  api.start_draining();
  http.stop();
  const auto drain = std::chrono::milliseconds((long long)(s.drain_seconds * 1000));
  service->drain(drain);
  // The answers of the last requests are being written: give them the I/O timeout.
  http.wait_connections(drain + s.http.io_timeout);
  std::fprintf(stderr, "%sstopped\n", kPrefix);
  return kExitOk;
}

}  // namespace

int serve_command(int argc, char** argv) {
  Settings settings;
  try {
    if (!parse(argc, argv, settings)) return kExitOk;
  } catch (const po::error& e) {
    std::fprintf(stderr, "%s%s\n(prompthost serve --help lists the options)\n", kPrefix, e.what());
    return kExitUsage;
  } catch (const OptionError& e) {
    std::fprintf(stderr, "%s%s\n(prompthost serve --help lists the options)\n", kPrefix, e.what());
    return kExitUsage;
  }
  try {
    return run(settings);
  } catch (const std::exception& e) {  // ph::Error, ApiError of an --adapter, bad_alloc
    std::fprintf(stderr, "%s%s\n", kPrefix, e.what());
    return kExitFailure;
  }
}

}  // namespace ph::cli
