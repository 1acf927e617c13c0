// Cartridges composed by concatenation (PEFT's compose_cartridge_adapters; Eyuboglu et
// al. 2025: cartridges trained on separate corpora, concatenated, answer across them
// without retraining). The result is an ordinary CARTRIDGE adapter folder that PEFT and
// PromptHost load like any other.
#pragma once

#include <string>
#include <vector>

namespace ph::trainer {

struct ComposeResult {
  int num_virtual_tokens = 0;  // the rows of every input, in order
  int num_frozen_tokens = 0;   // the first input's (its attention sink), as PEFT keeps
};

// Stacks the prompt_embeddings of the CARTRIDGE adapters in `inputs` (two or more, in
// order) and writes the adapter to `output`: adapter_config.json is the first input's with
// num_virtual_tokens the total, adapter_model.safetensors holds the stacked tensor, and,
// when the first input is PromptHost's, prompthost_adapter.json says what it was composed
// from. The inputs must agree on PEFT's task_type, token_dim, num_layers,
// num_attention_heads and num_transformer_submodules, and on the model they were made
// for when they say. `output` must not hold an adapter unless `overwrite`; an old
// training state there is removed (a composed adapter is not a run to resume). Throws
// ph::Error naming the input, its file and the field that does not fit.
ComposeResult compose_cartridges(const std::vector<std::string>& inputs, const std::string& output,
                                 bool overwrite);

}  // namespace ph::trainer
