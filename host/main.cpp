// `prompthost COMMAND [OPTIONS]`: dispatches to the command in host/cli/.
#include <cstdio>
#include <cstring>
#include <iterator>

#include "host/cli/commands.h"
#include "host/plugin/crash_report.h"
#include "models/engine/isa.h"

namespace {

const ph::cli::Command kCommands[] = {
    {"train", "train a method's soft prompt on a frozen model", ph::cli::train_command},
    {"eval", "evaluate an adapter on data", ph::cli::eval_command},
    {"generate", "continue a prompt with a frozen model (KV-cached decoding)",
     ph::cli::generate_command},
    {"inspect", "show the config and tensors of an adapter, a model folder or a .bin",
     ph::cli::inspect_command},
    {"plugins", "list the method plugins found and why others do not load",
     ph::cli::plugins_command},
    {"bench", "time training steps or decoding against the PyTorch baseline's workloads",
     ph::cli::bench_command},
    {"tokenize", "show the token ids of a text, or the text of ids (--decode)",
     ph::cli::tokenize_command},
    {"serve", "serve a model and its adapters over HTTP (OpenAI-compatible API)",
     ph::cli::serve_command},
    {"compose", "concatenate cartridge adapters into one (PEFT's compose_cartridge_adapters)",
     ph::cli::compose_command},
};

void print_usage(FILE* out) {
  std::fprintf(
      out,
      "prompthost: soft-prompt tuning on frozen language models\n\n"
      "Usage: prompthost COMMAND [OPTIONS]   (prompthost COMMAND --help for its options)\n\n"
      "Commands:\n");
  for (const auto& c : kCommands) std::fprintf(out, "  %-10s %s\n", c.name, c.summary);
  std::fprintf(out,
               "\nExamples:\n"
               "  prompthost train --plugin prefix_tuning     # the bundled demo model and task\n"
               "  prompthost generate --model models/demo/hf --prompt \"The computer\" "
               "--max-new-tokens 40\n");
}

}  // namespace

int main(int argc, char** argv) {
  ph::host::install_plugin_crash_report();  // a plugin that crashes says so before the end
  if (argc < 2) {
    print_usage(stderr);
    return ph::cli::kExitUsage;
  }
  if (!std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h") ||
      !std::strcmp(argv[1], "help")) {
    print_usage(stdout);
    return ph::cli::kExitOk;
  }
  try {  // a bad $PROMPTHOST_ISA is refused here, before an engine thread meets it
    ph::active_isa();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "prompthost: %s\n", e.what());
    return ph::cli::kExitFailure;
  }
  for (const auto& c : kCommands)
    if (!std::strcmp(argv[1], c.name)) return c.run(argc - 1, argv + 1);
  std::fprintf(stderr, "prompthost: unknown command '%s'\n\n", argv[1]);
  print_usage(stderr);
  return ph::cli::kExitUsage;
}
