// Adapters of every method on the bundled demo model, with random weights (each plugin's
// seeded initialisation), written as `prompthost train` writes them: for the server's
// suites, which compare completions with `prompthost generate --adapter`.
#pragma once

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "host/plugin/method_instance.h"
#include "host/plugin/method_options.h"
#include "host/plugin/plugin_discovery.h"
#include "host/trainer/adapter_files.h"
#include "models/engine/model.h"
#include "models/tokenizer/tokenizer.h"
#include "test_support.h"

namespace ph::test {

// An adapter folder of `plugin` with its options `sets` (key=value).
// `gate`, when not 0, replaces every LLaMA-Adapter gate (PEFT initialises them to 0, which
// leaves the model as it is).
inline void write_random_adapter(const Model& model, const Tokenizer& tokenizer,
                                 const std::string& dir, const std::string& plugin,
                                 const std::vector<std::string>& sets,
                                 const std::vector<std::string>& task_names, float gate = 0.0f) {
  auto library = host::find_plugin(plugin, {});
  const auto options = host::resolve_options(library->descriptor(), nlohmann::json::object(), sets);
  host::ModelHost model_host(model, &tokenizer);
  host::MethodInstance method(library, model_host, options, 11);
  const std::string gate_suffix = ".adaption_gate";
  for (const auto& p : method.parameters())
    if (gate != 0.0f && p.name.size() > gate_suffix.size() &&
        p.name.compare(p.name.size() - gate_suffix.size(), gate_suffix.size(), gate_suffix) == 0)
      std::fill(p.value, p.value + p.numel, gate);
  trainer::write_adapter(dir, method, model.config, source_path("models/demo/hf"), task_names);
}

// The demo model, its tokenizer and, in `dir`, one adapter of every method: pt (prompt
// tuning), prefix and prefix_proj (prefix tuning without and with the projection), ptune
// (P-tuning with a template that puts virtual tokens inside the prompt), multi (multitask
// prompt tuning, tasks "topic" and "sentiment"), adapt (LLaMA-Adapter in the top two
// layers, gates 0.5), cart (a 4-token cartridge, its first row frozen).
struct DemoAdapters {
  Model model;
  std::unique_ptr<Tokenizer> tokenizer;
  std::string dir;
  explicit DemoAdapters(const std::string& name)
      : model(load_model(source_path("models/demo/hf"))),
        tokenizer(load_tokenizer(source_path("models/demo/hf/tokenizer.model"))),
        dir(temp_dir(name)) {
    const Tokenizer& t = *tokenizer;
    write_random_adapter(model, t, dir + "/pt", "prompt_tuning", {"num_virtual_tokens=4"}, {});
    write_random_adapter(model, t, dir + "/prefix", "prefix_tuning", {"num_virtual_tokens=3"}, {});
    write_random_adapter(
        model, t, dir + "/prefix_proj", "prefix_tuning",
        {"num_virtual_tokens=3", "prefix_projection=true", "encoder_hidden_size=16"}, {});
    write_random_adapter(model, t, dir + "/ptune", "p_tuning",
                         {"num_virtual_tokens=4", "encoder_hidden_size=16",
                          "template=[P:2] Quote: {input} [P:2] Topic: {output}"},
                         {});
    write_random_adapter(model, t, dir + "/multi", "multitask_prompt_tuning",
                         {"num_virtual_tokens=4", "num_tasks=2", "num_ranks=2"},
                         {"topic", "sentiment"});
    write_random_adapter(model, t, dir + "/adapt", "adaption_prompt",
                         {"adapter_len=4", "adapter_layers=2"}, {}, 0.5f);
    write_random_adapter(model, t, dir + "/cart", "cartridge",
                         {"num_virtual_tokens=4", "num_frozen_tokens=1", "objective=next_token"},
                         {});
  }
  static std::vector<std::string> names() {
    return {"pt", "prefix", "prefix_proj", "ptune", "multi", "adapt", "cart"};
  }
};

}  // namespace ph::test
