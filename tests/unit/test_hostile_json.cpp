// Deeply nested JSON in every file PromptHost reads (issue 12, finding 10): each reader
// refuses it with the file's name instead of overflowing the stack. The files are the
// ones of shared/robustness/gen_deep.py, made here (a million levels, or 100,000 nested
// tokenizer stages).
#include <catch.hpp>

#include <cstdint>
#include <filesystem>
#include <fstream>

#include "host/trainer/dataset.h"
#include "host/trainer/run_files.h"
#include "models/common/json_file.h"
#include "models/config/model_config.h"
#include "models/loader/safetensors.h"
#include "models/tokenizer/tokenizer.h"
#include "test_support.h"

using Catch::Contains;
using namespace ph;

namespace {

constexpr int kDeep = 1000000;

std::string nested_arrays(int depth) {
  return std::string(depth, '[') + std::string(depth, ']');
}

std::string write(const std::string& folder, const std::string& name, const std::string& text) {
  const std::string path = folder + "/" + name;
  std::ofstream(path, std::ios::binary) << text;
  return path;
}

// The error names the file and says why.
void refused_deep(const std::string& message, const std::string& file) {
  CHECK_THAT(message, Contains(file) && Contains("nested deeper than"));
}

}  // namespace

TEST_CASE("parse_json bounds the nesting depth and names the source", "[json]") {
  CHECK(parse_json(nested_arrays(kMaxJsonDepth), "ok.json").is_array());
  refused_deep(test::error_of([] { parse_json(nested_arrays(kMaxJsonDepth + 1), "x.json"); }),
               "x.json");
  refused_deep(test::error_of([] { parse_json(nested_arrays(kDeep), "deep.json"); }), "deep.json");
  std::string objects;
  for (int i = 0; i < kDeep; ++i) objects += "{\"a\":";
  objects += "1" + std::string(kDeep, '}');
  refused_deep(test::error_of([&] { parse_json(objects, "objects.json"); }), "objects.json");
  CHECK_THAT(test::error_of([] { parse_json("{\"a\": ", "cut.json"); }),
             Contains("cut.json: not valid JSON"));
}

TEST_CASE("a deep config.json, tokenizer.json or safetensors header is refused", "[json]") {
  const std::string dir = test::temp_dir("hostile_json_model");
  const auto config =
      write(dir, "config.json",
            "{\"model_type\": \"llama\", \"hidden_size\": " + nested_arrays(kDeep) + "}");
  refused_deep(test::error_of([&] { parse_hf_config(config); }), config);

  const std::string bpe = "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}";
  std::string sequence = bpe + ", \"normalizer\": ";
  for (int i = 0; i < 100000; ++i) sequence += "{\"type\": \"Sequence\", \"normalizers\": [";
  sequence += "{\"type\": \"Strip\"}";
  for (int i = 0; i < 100000; ++i) sequence += "]}";
  const auto tok_sequence = write(dir, "deep_sequence.json", sequence + "}");
  refused_deep(test::error_of([&] { load_tokenizer(tok_sequence); }), tok_sequence);
  const auto tok_pre =
      write(dir, "deep_pre.json", bpe + ", \"pre_tokenizer\": " + nested_arrays(kDeep) + "}");
  refused_deep(test::error_of([&] { load_tokenizer(tok_pre); }), tok_pre);

  const std::string header = "{\"w\": {\"dtype\": \"F32\", \"shape\": " + nested_arrays(kDeep) +
                             ", \"data_offsets\": [0, 0]}}";
  const uint64_t n = header.size();
  const auto st =
      write(dir, "deep.safetensors", std::string(reinterpret_cast<const char*>(&n), 8) + header);
  refused_deep(test::error_of([&] { SafetensorsFile{st}; }), st);
}

TEST_CASE("deep adapter, run and data files are refused with their names", "[json]") {
  const std::string dir = test::temp_dir("hostile_json_run");
  const auto adapter_config =
      write(dir, "adapter_config.json",
            "{\"peft_type\": \"PROMPT_TUNING\", \"x\": " + nested_arrays(kDeep) + "}");
  refused_deep(test::error_of([&] { trainer::read_json(adapter_config); }), adapter_config);
  const auto data =
      write(dir, "data.jsonl", "{\"text\": \"ok\"}\n{\"text\": " + nested_arrays(kDeep) + "}\n");
  refused_deep(test::error_of([&] { trainer::read_jsonl(data); }), data + ":2");
}
