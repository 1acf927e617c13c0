// The trainer end to end with the prompt_tuning plugin on the bundled demo model:
// resume continues bit for bit, the adapter has PEFT's exact layout, and bad input
// (options, model, data, an adapter for another model) is a clear error.
#include <catch.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>

#include "host/trainer/adapter_files.h"
#include "host/trainer/adapter_loading.h"
#include "host/trainer/run_files.h"
#include "host/trainer/trainer.h"
#include "models/common/error.h"
#include "models/loader/safetensors.h"
#include "test_support.h"
#include "trainer_test_support.h"

using namespace ph;
using namespace ph::trainer;
namespace fs = std::filesystem;

using test::read_bytes;
using test::small_run;

TEST_CASE("a run stopped and resumed ends with exactly the parameters of an uninterrupted run",
          "[trainer]") {
  const std::string whole = test::temp_dir("trainer_whole"),
                    split = test::temp_dir("trainer_split");
  const TrainSummary a = train(small_run(whole));
  CHECK(a.steps == 6);
  TrainConfig first = small_run(split);
  first.stop_after = 3;
  const TrainSummary b1 = train(first);
  CHECK(b1.steps == 3);
  TrainConfig resume;
  resume.threads = 1;
  resume.quiet = true;
  const TrainSummary b2 = train(resume, split);
  CHECK(b2.steps == 6);
  // parameters and both AdamW moments, byte for byte
  const std::string state_a = read_bytes(whole + "/" + kTrainingStateFile);
  const std::string state_b = read_bytes(split + "/" + kTrainingStateFile);
  REQUIRE(!state_a.empty());
  CHECK(state_a == state_b);
  CHECK(read_bytes(whole + "/" + kAdapterModelFile) == read_bytes(split + "/" + kAdapterModelFile));
  // the parameters moved: training happened
  TrainConfig none = small_run(test::temp_dir("trainer_zero"));
  none.max_steps = 1;
  none.lr = 0.0;
  none.warmup_steps = 0;
  train(none);
  CHECK(read_bytes(none.output_dir + "/" + kAdapterModelFile) !=
        read_bytes(whole + "/" + kAdapterModelFile));
  // the run's other files
  CHECK(fs::exists(whole + "/metrics.jsonl"));
  CHECK(fs::exists(whole + "/loss_curve.svg"));
  CHECK(read_json(whole + "/" + kTrainerStateFile)["loop"]["step"] == 6);
}

TEST_CASE("the adapter has PEFT's exact layout for prompt tuning", "[trainer]") {
  const std::string out = test::temp_dir("trainer_layout");
  train(small_run(out));
  // peft-spec §3: the 17 keys PEFT writes for PROMPT_TUNING
  const std::set<std::string> expected = {"auto_mapping",
                                          "base_model_name_or_path",
                                          "inference_mode",
                                          "modules_to_save",
                                          "num_attention_heads",
                                          "num_layers",
                                          "num_transformer_submodules",
                                          "num_virtual_tokens",
                                          "peft_type",
                                          "peft_version",
                                          "prompt_tuning_init",
                                          "prompt_tuning_init_text",
                                          "revision",
                                          "task_type",
                                          "token_dim",
                                          "tokenizer_kwargs",
                                          "tokenizer_name_or_path"};
  const auto cfg = read_json(out + "/" + kAdapterConfigFile);
  std::set<std::string> keys;
  for (auto it = cfg.begin(); it != cfg.end(); ++it) keys.insert(it.key());
  CHECK(keys == expected);
  CHECK(cfg["peft_type"] == "PROMPT_TUNING");
  CHECK(cfg["task_type"] == "CAUSAL_LM");
  CHECK(cfg["inference_mode"] == true);
  CHECK(cfg["num_virtual_tokens"] == 5);
  CHECK(cfg["token_dim"] == 128);
  CHECK(cfg["num_layers"] == 5);
  CHECK(cfg["num_attention_heads"] == 4);
  CHECK(cfg["num_transformer_submodules"] == 1);
  CHECK(cfg["prompt_tuning_init"] == "RANDOM");
  // one tensor, prompt_embeddings F32 [n, token_dim], metadata {"format": "pt"}
  SafetensorsFile f(out + "/" + kAdapterModelFile);
  REQUIRE(f.tensors().size() == 1);
  CHECK(f.tensors()[0].name == "prompt_embeddings");
  CHECK(f.tensors()[0].dtype == DType::kF32);
  CHECK(f.tensors()[0].shape == std::vector<int64_t>{5, 128});
  CHECK(f.metadata() == std::map<std::string, std::string>{{"format", "pt"}});
}

TEST_CASE("bad options, models, data and adapters are clear errors", "[trainer]") {
  using Catch::Contains;
  TrainConfig c = small_run(test::temp_dir("trainer_errors"));
  c.set = {"bogus_option=1"};
  CHECK_THAT(test::error_message([&] { train(c); }), Contains("bogus_option"));
  c.set = {"num_virtual_tokens=abc"};
  CHECK_THAT(test::error_message([&] { train(c); }), Contains("num_virtual_tokens"));
  c.set = {"num_virtual_tokens=0"};
  CHECK_THAT(test::error_message([&] { train(c); }), Contains("num_virtual_tokens"));
  c.set = {"prompt_tuning_init=MAGIC"};
  CHECK_THAT(test::error_message([&] { train(c); }), Contains("prompt_tuning_init"));
  c.set = {"prompt_tuning_init=TEXT"};
  CHECK_THAT(test::error_message([&] { train(c); }), Contains("prompt_tuning_init_text"));
  c.set = {};
  c.model = "/nonexistent/model";
  CHECK_THAT(test::error_message([&] { train(c); }), Contains("/nonexistent/model"));
  c = small_run(c.output_dir);
  const std::string bad = test::temp_dir("trainer_bad_data") + "/bad.jsonl";
  std::ofstream(bad) << "{\"text\": \"fine\"}\n{\"output\": \"no input\"}\n";
  c.data = bad;
  CHECK_THAT(test::error_message([&] { train(c); }), Contains("bad.jsonl:2"));
  c = small_run(c.output_dir);
  c.plugin = "no_such_method";
  CHECK_THAT(test::error_message([&] { train(c); }), Contains("no_such_method"));
}

TEST_CASE("an adapter made for another model is refused", "[trainer]") {
  const std::string out = test::temp_dir("trainer_other_model");
  train(small_run(out));
  const Model other = load_model(test::fixtures_dir() + "/models/llama-tiny");
  host::ModelHost host(other, nullptr);
  CHECK_THAT(test::error_message([&] { open_adapter(out, host, {}); }),
             Catch::Contains("made for a model with dim = 128, this model has 64"));
  // and on the right model it opens and produces its tensors
  const Model demo = load_model(test::source_path("models/demo/hf"));
  host::ModelHost demo_host(demo, nullptr);
  LoadedAdapter a = open_adapter(out, demo_host, {});
  const Injection inj = a.method->forward(1, {}, false);
  SafetensorsFile f(out + "/" + kAdapterModelFile);
  const FloatTensor saved = f.to_float("prompt_embeddings");
  REQUIRE(inj.virtual_tokens.size() == saved.numel);
  CHECK(std::equal(saved.data, saved.data + saved.numel, inj.virtual_tokens.begin()));
}

TEST_CASE("rank accuracy fits every candidate output into the context", "[trainer]") {
  // An example whose input fills the context up to its own short output: scoring it with
  // a longer candidate output must cut more of the input, not overflow the context
  // (the demo context is 256; 50 virtual tokens leave 206 real tokens).
  const std::string dir = test::temp_dir("trainer_rank_fit");
  std::string long_input = "Quote:";
  for (int i = 0; i < 300; ++i) long_input += " word";
  {
    std::ofstream out(dir + "/eval.jsonl");
    out << nlohmann::json{{"input", long_input + "\nTopic:"}, {"output", " computers"}}.dump() << "\n"
        << nlohmann::json{{"input", "Quote: short.\nTopic:"}, {"output", " definitions"}}.dump()
        << "\n";
  }
  TrainConfig c = small_run(dir + "/run");
  c.set = {"num_virtual_tokens=50"};
  c.eval_data = dir + "/eval.jsonl";
  c.eval_generate = false;
  c.max_steps = 1;
  const TrainSummary s = train(c);
  REQUIRE(s.evaluated);
  CHECK(s.after.rank_candidates == 2);
  CHECK(std::isfinite(s.after.loss));
}

TEST_CASE("every setting's range is checked before any work, naming the option", "[trainer]") {
  // A missing model: a setting reported first was checked before the model was loaded.
  const std::string out = test::temp_dir("trainer_ranges") + "/run";
  auto refused = [&](const std::function<void(TrainConfig&)>& change) {
    TrainConfig c = small_run(out);
    c.model = "/nonexistent/model";
    change(c);
    return test::error_message([&] { train(c); });
  };
  using Catch::StartsWith;
  CHECK_THAT(refused([](TrainConfig& c) { c.lr = -1; }), StartsWith("--lr must be"));
  CHECK_THAT(refused([](TrainConfig& c) { c.lr = NAN; }), StartsWith("--lr must be"));
  CHECK_THAT(refused([](TrainConfig& c) { c.lr = INFINITY; }), StartsWith("--lr must be"));
  CHECK_THAT(refused([](TrainConfig& c) { c.batch_size = 0; }), StartsWith("--batch-size must be"));
  CHECK_THAT(refused([](TrainConfig& c) { c.adamw.max_grad_norm = NAN; }),
             StartsWith("--max-grad-norm must be"));
  CHECK_THAT(refused([](TrainConfig& c) { c.adamw.weight_decay = -0.1; }),
             StartsWith("--weight-decay must be"));
  CHECK_THAT(refused([](TrainConfig& c) { c.threads = -1; }), StartsWith("--threads must be"));
  CHECK_THAT(refused([](TrainConfig& c) { c.threads = 1 << 20; }), StartsWith("--threads must be"));
  CHECK_THAT(refused([](TrainConfig& c) { c.max_steps = -1; }), StartsWith("--max-steps must be"));
  CHECK_THAT(refused([](TrainConfig& c) { c.epochs = 0; }), StartsWith("--epochs must be"));
  CHECK_THAT(refused([](TrainConfig& c) { c.grad_accum = 0; }), StartsWith("--grad-accum must be"));
  CHECK_THAT(refused([](TrainConfig& c) { c.warmup_steps = -2; }),
             StartsWith("--warmup-steps must be"));
  CHECK_THAT(refused([](TrainConfig& c) { c.save_every = -1; }),
             StartsWith("--save-every must be"));
  CHECK_THAT(refused([](TrainConfig& c) { c.eval_every = -1; }),
             StartsWith("--eval-every must be"));
  CHECK_THAT(refused([](TrainConfig& c) { c.patience = -1; }), StartsWith("--patience must be"));
  CHECK_THAT(refused([](TrainConfig& c) { c.stop_after = -3; }),
             StartsWith("--stop-after must be"));
  CHECK_THAT(refused([](TrainConfig& c) { c.max_length = -1; }),
             StartsWith("--max-length must be"));
  CHECK_THAT(refused([](TrainConfig& c) { c.schedule = "sometimes"; }),
             StartsWith("--schedule must be linear, cosine or constant"));
  // in range, the first problem is the model
  CHECK_THAT(refused([](TrainConfig&) {}), Catch::Contains("/nonexistent/model"));
}
