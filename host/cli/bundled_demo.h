// Where the bundled demo (model, tokenizer, tasks) lives: the default of every command
// run without --model.
#pragma once

#include <string>

namespace ph::cli {

// The demo folder (holding hf/, fortune-llama.bin, tokenizer.bin, tasks/), looked up in
// this order: $PROMPTHOST_DEMO_DIR; <prefix>/share/prompthost/demo beside an installed
// prompthost (<prefix>/bin/prompthost), wherever the prefix was moved to; the source
// tree this binary was built from.
std::string bundled_demo_dir();

// bundled_demo_dir() + "/" + relative.
std::string bundled_demo_path(const std::string& relative);

}  // namespace ph::cli
