// Every adapter folder PEFT wrote in the Hugging Face fixtures (tests/fixtures/hf/adapters,
// and $PROMPTHOST_FIXTURES_HF's), loaded by the command line on its base model as a user
// would, reproduces PEFT's recorded forward of its case:
//   - `prompthost eval --json` on the case's batch (written as token-id data, fed as PEFT
//     feeds it: tests/fixtures/hf/README.md) gives expect.loss within 1e-4 (relative);
//   - `prompthost generate --prompt-ids` on row 0 gives the reference's prediction (for an
//     encoder-decoder: the decoder's first token from the encoder's input): the
//     argmax of expect.logits at its last real position (causal LMs: the first greedy
//     token), or the class with the largest logit (SEQ_CLS, --json).
// P-tuning and prefix-projection adapters hold only prompt_embeddings (the encoder's
// output), SEQ_CLS adapters the trained head (base_model.classifier..., modules_to_save).
// One section per adapter folder (`hf_adapters -c qwen2-tiny__prompt_tuning` runs one);
// PROMPTHOST_HF_MODELS=qwen2-tiny,bloom-tiny limits the run to those models.
#include <catch.hpp>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "cli_run.h"
#include "models/loader/safetensors.h"
#include "test_support.h"

namespace fs = std::filesystem;
using namespace ph;

namespace {

constexpr double kTolerance = 1e-4;

struct AdapterCase {
  std::string model, name;  // "bert-cls-tiny", "bert-cls-tiny__prompt_tuning"
  fs::path root;            // the fixtures folder
};

std::vector<AdapterCase> adapter_cases() {
  std::vector<fs::path> roots = {fs::path(test::source_path("tests/fixtures/hf"))};
  if (const char* env = std::getenv("PROMPTHOST_FIXTURES_HF"); env && *env) roots.push_back(env);
  std::vector<AdapterCase> cases;
  for (const auto& root : roots) {
    REQUIRE(fs::is_directory(root / "adapters"));
    for (const auto& e : fs::directory_iterator(root / "adapters")) {
      const std::string name = e.path().filename().string();
      const auto split = name.find("__");
      REQUIRE(split != std::string::npos);
      cases.push_back({name.substr(0, split), name, root});
    }
  }
  std::sort(cases.begin(), cases.end(),
            [](const AdapterCase& a, const AdapterCase& b) { return a.name < b.name; });
  return cases;
}

// The case's batch as token-id data, one line per row, as PEFT feeds it: the real tokens
// (padding dropped); causal labels as an unscored start and a scored rest; seq2seq the
// scored decoder labels; SEQ_CLS the class's name; multitask the row's task index.
std::string write_batch(const SafetensorsFile& f, const std::vector<std::string>& class_names,
                        const std::string& path) {
  const std::string task = f.metadata().at("task_type");
  const auto ids = f.to_int64("input.input_ids");
  const auto mask = f.to_int64("input.attention_mask");
  const auto labels = f.to_int64("input.labels");
  std::vector<int64_t> task_ids;
  if (f.find("input.task_ids")) task_ids = f.to_int64("input.task_ids");
  const int B = (int)f.info("input.input_ids").shape[0],
            S = (int)f.info("input.input_ids").shape[1];
  std::ofstream out(path);
  for (int b = 0; b < B; ++b) {
    nlohmann::json line = {{"input_ids", nlohmann::json::array()}};
    std::vector<int64_t> real, real_labels;
    const bool causal = task == "CAUSAL_LM";  // only then are the labels [B, S]
    for (int t = 0; t < S; ++t) {
      if (!mask[b * S + t]) continue;
      real.push_back(ids[b * S + t]);
      if (causal) real_labels.push_back(labels[b * S + t]);
    }
    if (task == "CAUSAL_LM") {
      size_t unscored = 0;
      while (unscored < real.size() && real_labels[unscored] == -100) ++unscored;
      for (size_t t = unscored; t < real.size(); ++t) REQUIRE(real_labels[t] == real[t]);
      line["input_ids"] = std::vector<int64_t>(real.begin(), real.begin() + unscored);
      line["output_ids"] = std::vector<int64_t>(real.begin() + unscored, real.end());
    } else if (task == "SEQ_2_SEQ_LM") {
      const int T = (int)f.info("input.labels").shape[1];
      std::vector<int64_t> target;
      for (int t = 0; t < T && labels[b * T + t] != -100; ++t) target.push_back(labels[b * T + t]);
      line["input_ids"] = real;
      line["output_ids"] = target;
    } else {
      line["input_ids"] = real;
      line["label"] = class_names.at((size_t)labels[b]);
    }
    if (!task_ids.empty()) line["task"] = task_ids[b];
    out << line.dump() << "\n";
  }
  return task;
}

// The classes as transformers names them: id2label, or LABEL_0 ... for num_labels (2 by
// default) when the config has none.
std::vector<std::string> class_names(const fs::path& model_dir) {
  std::ifstream in(model_dir / "config.json");
  const auto config = nlohmann::json::parse(in);
  std::vector<std::string> names;
  if (config.contains("id2label")) {
    names.resize(config["id2label"].size());
    for (const auto& [id, name] : config["id2label"].items()) names.at(std::stoul(id)) = name;
    return names;
  }
  const int n = config.value("num_labels", 2);
  for (int k = 0; k < n; ++k) names.push_back("LABEL_" + std::to_string(k));
  return names;
}

// Row 0's prediction in the reference: the argmax of its last real logits row, and the
// margin to the runner-up (a near tie cannot be checked in float32).
std::pair<int, double> reference_prediction(const SafetensorsFile& f, bool seq2seq) {
  const auto& shape = f.info("expect.logits").shape;
  const FloatTensor logits = f.to_float("expect.logits");
  const size_t width = shape.back();
  size_t row = 0;  // SEQ_CLS: [B, classes]; SEQ_2_SEQ_LM: the first decoder position
  if (shape.size() == 3 && !seq2seq) {
    const auto mask = f.to_int64("input.attention_mask");
    const size_t S = (size_t)f.info("input.attention_mask").shape[1];
    size_t last = 0;
    for (size_t t = 0; t < S; ++t)
      if (mask[t]) last = t;
    row = last;  // batch row 0
  }
  std::vector<double> v(logits.data + row * width, logits.data + (row + 1) * width);
  const int best = (int)(std::max_element(v.begin(), v.end()) - v.begin());
  double second = -1e300;
  for (size_t k = 0; k < v.size(); ++k)
    if ((int)k != best) second = std::max(second, v[k]);
  return {best, v[best] - second};
}

}  // namespace

TEST_CASE("every PEFT adapter folder reproduces its case through prompthost eval and generate",
          "[hf][cli]") {
  for (const AdapterCase& c : adapter_cases()) {
    if (!test::hf_model_selected(c.model)) continue;
    DYNAMIC_SECTION(c.name) {
      {
        const std::string work = test::temp_dir("hf-adapters-" + c.name);
        const SafetensorsFile f((c.root / "cases" / (c.name + ".safetensors")).string());
        const fs::path model = c.root / "models" / c.model;
        const std::string adapter = (c.root / "adapters" / c.name).string();
        const auto names = class_names(model);
        const std::string data = work + "/batch.jsonl";
        const std::string task = write_batch(f, names, data);

        const test::CommandResult eval =
            test::run_prompthost({"eval", "--adapter", adapter, "--model", model.string(), "--data",
                                  data, "--json", "--no-generate", "--threads", "1"},
                                 work);
        INFO("prompthost eval: " << eval.err);
        REQUIRE(eval.code == 0);
        const auto report = nlohmann::json::parse(eval.out);
        CHECK(report.at("task_type") == task);
        const double want = f.to_float("expect.loss").data[0];
        const double got = report.at("loss").get<double>();
        INFO("loss " << got << ", PEFT's " << want);
        CHECK(std::abs(got - want) <= kTolerance * std::abs(want));

        const bool seq2seq = task == "SEQ_2_SEQ_LM";
        const auto [best, margin] = reference_prediction(f, seq2seq);
        if (margin < 1e-4) {
          WARN(c.name << ": row 0's top two logits are within " << margin << ": not checked");
          continue;
        }
        std::string prompt;
        const std::string batch_line = [&] {
          std::ifstream in(data);
          std::string line;
          std::getline(in, line);
          return line;
        }();
        const auto row0 = nlohmann::json::parse(batch_line);
        // causal: the row's ids (the next token follows them); seq2seq: the encoder's input
        // (the decoder's first token follows its start token)
        for (const auto& part : {"input_ids", "output_ids"})
          if (row0.contains(part) && !(seq2seq && std::string(part) == "output_ids"))
            for (const auto& id : row0[part]) prompt += (prompt.empty() ? "" : " ") + id.dump();
        std::vector<std::string> args = {"generate",
                                         "--adapter",
                                         adapter,
                                         "--model",
                                         model.string(),
                                         "--prompt-ids",
                                         prompt,
                                         "--temperature",
                                         "0",
                                         "--max-new-tokens",
                                         "1"};
        if (row0.contains("task")) args.insert(args.end(), {"--task", row0["task"].dump()});
        if (task == "SEQ_CLS") args.push_back("--json");
        const test::CommandResult gen = test::run_prompthost(args, work);
        INFO("prompthost generate: " << gen.err);
        REQUIRE(gen.code == 0);
        if (task == "SEQ_CLS") {
          CHECK(nlohmann::json::parse(gen.out).at("label") == names.at(best));
        } else {
          CHECK(std::stoi(gen.out) == best);
        }
      }
    }
  }
}

TEST_CASE("eval refuses an adapter of another task type and a task type the model cannot do",
          "[hf][cli]") {
  // Runs in the qwen2-tiny test only: the per-model tests run in parallel, and this one
  // works in a folder of its own name.
  if (!test::hf_model_selected("qwen2-tiny")) return;
  const fs::path root = test::source_path("tests/fixtures/hf");
  const std::string work = test::temp_dir("hf-adapters-refusals");
  const std::string model = (root / "models" / "qwen2-tiny").string();
  const std::string adapter = work + "/adapter";
  fs::copy(root / "adapters" / "qwen2-tiny__prompt_tuning", adapter);
  const std::string config_path = adapter + "/adapter_config.json";
  nlohmann::json config = nlohmann::json::parse(std::ifstream(config_path));
  config["task_type"] = "SEQ_CLS";
  std::ofstream(config_path) << config.dump();
  const std::string data = work + "/data.jsonl";
  std::ofstream(data) << "{\"input_ids\": [1, 20, 30], \"output_ids\": [40]}\n";

  const auto other_task = test::run_prompthost(
      {"eval", "--adapter", adapter, "--model", model, "--data", data, "--no-generate"}, work);
  CHECK(other_task.code == 1);
  CHECK_THAT(other_task.err, Catch::Contains("adapter/adapter_config.json: field \"task_type\" is "
                                             "SEQ_CLS, but the model is used as CAUSAL_LM"));
  const auto cannot = test::run_prompthost({"eval", "--adapter", adapter, "--model", model,
                                            "--data", data, "--task-type", "SEQ_CLS"},
                                           work);
  CHECK(cannot.code == 1);
  CHECK_THAT(cannot.err, Catch::Contains("qwen2-tiny: cannot be used as SEQ_CLS"));
  const auto seq2seq = test::run_prompthost(
      {"generate", "--model", model, "--prompt-ids", "1 20", "--task-type", "SEQ_2_SEQ_LM"}, work);
  CHECK(seq2seq.code == 1);
  CHECK_THAT(seq2seq.err, Catch::Contains("SEQ_2_SEQ_LM needs an encoder-decoder"));
}
