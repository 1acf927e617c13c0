// Shared by the trainer's suites: a small prompt-tuning run on the bundled demo model,
// and file helpers.
#pragma once

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "host/trainer/trainer.h"
#include "test_support.h"

namespace ph::test {

// The first n lines of the demo's topic training data, written to `path`.
inline std::string topic_subset(const std::string& path, int n) {
  std::ifstream in(source_path("models/demo/tasks/topic/train.jsonl"));
  std::ofstream out(path);
  std::string line;
  for (int i = 0; i < n && std::getline(in, line); ++i) out << line << "\n";
  return path;
}

// Six steps of prompt tuning (5 virtual tokens) on 24 examples, one thread: a run whose
// files are the same bit for bit every time. Its data file is written beside `out`.
inline trainer::TrainConfig small_run(const std::string& out) {
  trainer::TrainConfig c;
  c.plugin = "prompt_tuning";
  c.model = source_path("models/demo/hf");
  c.data = topic_subset(out + ".train.jsonl", 24);
  c.output_dir = out;
  c.max_steps = 6;
  c.batch_size = 4;
  c.lr = 0.03;
  c.warmup_steps = 2;
  c.seed = 7;
  c.threads = 1;
  c.quiet = true;
  c.set = {"num_virtual_tokens=5"};
  return c;
}

inline std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

inline void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

}  // namespace ph::test
