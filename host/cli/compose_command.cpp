// `prompthost compose`: cartridges concatenated into one (PEFT's
// compose_cartridge_adapters), e.g. one trained per corpus, served together.
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include <boost/program_options.hpp>

#include "host/cli/commands.h"
#include "host/trainer/compose_adapters.h"
#include "models/common/error.h"

namespace ph::cli {

namespace po = boost::program_options;

int compose_command(int argc, char** argv) {
  std::string output;
  std::vector<std::string> inputs;
  po::options_description desc("Options");
  // clang-format off
  desc.add_options()
    ("help,h", "show this help and exit")
    ("output", po::value(&output), "the folder to write the composed adapter to (required)")
    ("overwrite", "replace an adapter already in --output");
  // clang-format on
  po::options_description hidden;
  hidden.add_options()("adapter", po::value(&inputs)->composing());
  po::options_description all;
  all.add(desc).add(hidden);
  po::positional_options_description positional;
  positional.add("adapter", -1);
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(argc, argv).options(all).positional(positional).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    std::fprintf(stderr, "prompthost compose: %s\n", e.what());
    return kExitUsage;
  }
  if (vm.count("help")) {
    std::cout << "Usage: prompthost compose --output DIR ADAPTER ADAPTER [ADAPTER...]\n\n"
                 "Concatenates CARTRIDGE adapters into one, as PEFT's\n"
                 "compose_cartridge_adapters does: their prompt_embeddings rows stacked in the\n"
                 "order given, num_virtual_tokens their sum, num_frozen_tokens the first's.\n"
                 "They must be made for the same model (task_type, token_dim, num_layers,\n"
                 "num_attention_heads and num_transformer_submodules agree). The result loads\n"
                 "in PEFT, generate, eval and serve like any cartridge; it holds no\n"
                 "training state (it is not a run to --resume).\n\n"
              << desc
              << "\nExample:\n  prompthost compose --output runs/quotes+topics runs/quotes "
                 "runs/topics\n";
    return kExitOk;
  }
  if (output.empty() || inputs.size() < 2) {
    std::fprintf(stderr,
                 "prompthost compose: --output and at least two adapter folders are required "
                 "(prompthost compose --help)\n");
    return kExitUsage;
  }
  try {
    const trainer::ComposeResult r =
        trainer::compose_cartridges(inputs, output, vm.count("overwrite") > 0);
    std::printf("composed %zu cartridges into %s: %d virtual tokens (%d frozen)\n", inputs.size(),
                output.c_str(), r.num_virtual_tokens, r.num_frozen_tokens);
    return kExitOk;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "prompthost compose: %s\n", e.what());
    return kExitFailure;
  }
}

}  // namespace ph::cli
