// CPT's context built from a task's own examples, for command-line training (PEFT's
// notebook builds it by hand): the first `count` examples of a JSONL file of
// {"input": ..., "output": ...} lines, each tokenized with the host's tokenizer, the
// input with type 4k+2 and the output with type 4k+4 (example k = 0, 1, ...).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace cpt {

struct Context {
  std::vector<int64_t> token_ids, types;
};

using Tokenize = std::function<std::vector<int64_t>(const std::string&)>;

// Throws ph::sdk::ConfigError naming `option` (the file option) and the line for a file
// that cannot be read, a line that is not {"input": string, "output": string}, or fewer
// than `count` examples.
Context context_from_examples(const std::string& path, int count, const Tokenize& tokenize,
                              const std::string& option);

}  // namespace cpt
