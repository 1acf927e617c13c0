// Task types on the host side: which task a model folder can be used for (and the
// refusals with their reasons), data per task type fed as PEFT feeds it (the fixtures'
// README, checked against a recorded case), labels by name, and adapters checked for
// their task type and classes on load.
#include <catch.hpp>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "host/trainer/adapter_files.h"
#include "host/trainer/task_encoding.h"
#include "host/trainer/task_type.h"
#include "models/loader/safetensors.h"
#include "test_support.h"

using namespace ph;
using namespace ph::trainer;
using Catch::Contains;
namespace fs = std::filesystem;

namespace {

ModelConfig config_of(Stacks stacks, TaskType task, std::vector<std::string> labels = {}) {
  ModelConfig c;
  c.stacks = stacks;
  c.task = task;
  c.labels = std::move(labels);
  c.max_positions = 64;
  c.eos_id = 1;
  c.pad_id = 0;
  return c;
}

ph_injection_spec prompt_spec(int n_virtual, bool per_example = false) {
  ph_injection_spec s{};
  s.struct_size = sizeof s;
  s.n_virtual = n_virtual;
  s.per_example = per_example;
  return s;
}

std::string write_lines(const std::string& name, const std::string& text) {
  const std::string path = test::temp_dir("task-types") + "/" + name;
  std::ofstream(path) << text;
  return path;
}

}  // namespace

TEST_CASE("the task type follows the model, and --task-type is refused with a reason",
          "[trainer][task]") {
  const ModelConfig t5 = config_of(Stacks::kEncoderDecoder, TaskType::kSeq2SeqLm);
  const ModelConfig bert = config_of(Stacks::kEncoder, TaskType::kSeqCls, {"neg", "pos"});
  const ModelConfig llama = config_of(Stacks::kDecoder, TaskType::kCausalLm);
  const ModelConfig llama_cls = config_of(Stacks::kDecoder, TaskType::kSeqCls, {"a", "b"});
  CHECK(resolve_task_type(t5, "", "t5") == TaskType::kSeq2SeqLm);
  CHECK(resolve_task_type(bert, "", "bert") == TaskType::kSeqCls);
  CHECK(resolve_task_type(llama, "CAUSAL_LM", "llama") == TaskType::kCausalLm);
  CHECK(resolve_task_type(llama_cls, "SEQ_CLS", "llama-cls") == TaskType::kSeqCls);

  CHECK_THAT(test::error_message([&] { resolve_task_type(bert, "CAUSAL_LM", "models/bert"); }),
             Contains("models/bert: cannot be used as CAUSAL_LM: an encoder") &&
                 Contains("no language-model head"));
  CHECK_THAT(test::error_message([&] { resolve_task_type(llama, "SEQ_CLS", "models/llama"); }),
             Contains("models/llama: cannot be used as SEQ_CLS") &&
                 Contains("does not create a randomly initialised head"));
  CHECK_THAT(test::error_message([&] { resolve_task_type(llama, "SEQ_2_SEQ_LM", "m"); }),
             Contains("SEQ_2_SEQ_LM needs an encoder-decoder"));
  CHECK_THAT(test::error_message([&] { resolve_task_type(t5, "CAUSAL_LM", "m"); }),
             Contains("use SEQ_2_SEQ_LM"));
  CHECK_THAT(test::error_message([&] { resolve_task_type(llama_cls, "CAUSAL_LM", "m"); }),
             Contains("classification head, no language-model head"));
  CHECK_THAT(test::error_message([&] { resolve_task_type(llama, "TOKEN_CLS", "m"); }),
             Contains("TOKEN_CLS"));
}

TEST_CASE("a template has no meaning outside CAUSAL_LM; T5 tables have 2n rows",
          "[trainer][task]") {
  ph_injection_spec templated = prompt_spec(4);
  templated.template_text = "[P:2] {input} [P:2]";
  CHECK_NOTHROW(check_method_for_task(templated, TaskType::kCausalLm, "p_tuning"));
  CHECK_THAT(
      test::error_message([&] { check_method_for_task(templated, TaskType::kSeqCls, "p_tuning"); }),
      Contains("plugin p_tuning: a template") && Contains("drop the template option"));
  CHECK_THAT(test::error_message(
                 [&] { check_method_for_task(prompt_spec(5), TaskType::kSeq2SeqLm, "pt"); }),
             Contains("2n rows"));

  const VirtualLayout shared = virtual_layout(prompt_spec(10), TaskType::kSeq2SeqLm);
  CHECK(shared.encoder == 5);
  CHECK(shared.decoder == 0);  // prompt tuning / P-tuning leave rows n..2n-1 unused
  const VirtualLayout multitask = virtual_layout(prompt_spec(10, true), TaskType::kSeq2SeqLm);
  CHECK(multitask.encoder == 5);
  CHECK(multitask.decoder == 5);
  CHECK(virtual_layout(prompt_spec(5), TaskType::kSeqCls).encoder == 5);
}

TEST_CASE("classification and token-id data are read with their fields", "[trainer][task]") {
  const auto path = write_lines(
      "cls.jsonl",
      "{\"text\": \"good\", \"label\": \"pos\"}\n{\"input\": \"bad\", \"label\": \"neg\"}\n"
      "{\"input_ids\": [2, 7, 3], \"label\": \"pos\", \"task\": 1}\n"
      "{\"input_ids\": [5, 6], \"output_ids\": [8, 1]}\n");
  const auto ex = read_jsonl(path);
  REQUIRE(ex.size() == 4);
  CHECK(ex[0].has_label);
  CHECK(ex[0].label == "pos");
  CHECK(ex[0].input == "good");
  CHECK(ex[1].input == "bad");
  CHECK_FALSE(ex[1].has_output);
  CHECK(ex[2].ids);
  CHECK(ex[2].input_ids == std::vector<int32_t>{2, 7, 3});
  CHECK(ex[2].task == "1");
  CHECK(ex[3].has_output);
  CHECK(ex[3].output_ids == std::vector<int32_t>{8, 1});

  const auto both =
      write_lines("both.jsonl", "{\"input\": \"x\", \"output\": \"y\", \"label\": \"a\"}\n");
  CHECK_THAT(test::error_message([&] { read_jsonl(both); }),
             Contains("both.jsonl:1: give \"label\"") && Contains("not both"));
  const auto bad_ids = write_lines("ids.jsonl", "{\"text\": \"ok\"}\n{\"input_ids\": [1, -2]}\n");
  CHECK_THAT(test::error_message([&] { read_jsonl(bad_ids); }),
             Contains("ids.jsonl:2: field \"input_ids\" holds -2, not a token id"));
  const auto label_type = write_lines("lt.jsonl", "{\"text\": \"x\", \"label\": 3}\n");
  CHECK_THAT(test::error_message([&] { read_jsonl(label_type); }),
             Contains("lt.jsonl:1: field \"label\" must be a string"));
}

TEST_CASE(
    "SEQ_CLS: virtual slots first, the class by name, an unknown label names file, "
    "line and value",
    "[trainer][task]") {
  Model model;
  model.config = config_of(Stacks::kEncoder, TaskType::kSeqCls, {"neg", "pos"});
  const TaskEncoding enc =
      task_encoding(model, TaskType::kSeqCls, prompt_spec(3), default_template(3), nullptr, 60);
  Example ex;
  ex.ids = true;
  ex.input_ids = {2, 9, 3};
  ex.has_label = true;
  ex.label = "pos";
  ex.line = 4;
  const Encoded e = encode_for_task(ex, nullptr, enc, "d.jsonl");
  CHECK(e.sequence.tokens ==
        std::vector<int32_t>{virtual_slot(0), virtual_slot(1), virtual_slot(2), 2, 9, 3});
  CHECK(e.sequence.class_label == 1);
  CHECK(e.sequence.labels.empty());

  ex.label = "maybe";
  CHECK_THAT(test::error_message([&] { encode_for_task(ex, nullptr, enc, "d.jsonl"); }),
             Contains("d.jsonl:4: label \"maybe\" is not one of the model's classes (neg, pos)"));
  Example text;
  text.input = "words";
  text.has_label = true;
  text.label = "neg";
  text.line = 2;
  CHECK_THAT(test::error_message([&] { encode_for_task(text, nullptr, enc, "d.jsonl"); }),
             Contains("d.jsonl:2: text data needs a tokenizer"));
  Example generation;
  generation.ids = true;
  generation.input_ids = {4};
  generation.output_ids = {5};
  generation.has_output = true;
  generation.line = 7;
  CHECK_THAT(test::error_message([&] { encode_for_task(generation, nullptr, enc, "d.jsonl"); }),
             Contains("d.jsonl:7: SEQ_CLS needs a \"label\""));
}

TEST_CASE("SEQ_2_SEQ_LM feeds the decoder as T5 derives it from the labels (a recorded case)",
          "[trainer][task]") {
  // t5-tiny multitask: the decoder input is [decoder_start] + labels[:-1]; multitask also
  // puts virtual slots n..2n-1 (unscored) before the decoder's tokens.
  const SafetensorsFile f(
      test::source_path("tests/fixtures/hf/cases/t5-tiny__multitask_prompt_tuning.safetensors"));
  const auto labels = f.to_int64("input.labels");
  const auto decoder_ids = f.to_int64("expect.decoder_input_ids");
  const auto ids = f.to_int64("input.input_ids");
  const auto mask = f.to_int64("input.attention_mask");
  const int B = (int)f.info("input.labels").shape[0], T = (int)f.info("input.labels").shape[1];
  const int S = (int)f.info("input.input_ids").shape[1];
  Model model;
  model.config = config_of(Stacks::kEncoderDecoder, TaskType::kSeq2SeqLm);
  const int n = 5;
  const TaskEncoding enc = task_encoding(model, TaskType::kSeq2SeqLm, prompt_spec(2 * n, true),
                                         default_template(2 * n), nullptr, 0);
  for (int b = 0; b < B; ++b) {
    Example ex;
    ex.ids = ex.has_output = true;
    for (int t = 0; t < S; ++t)
      if (mask[b * S + t]) ex.input_ids.push_back((int32_t)ids[b * S + t]);
    for (int t = 0; t < T && labels[b * T + t] != kIgnoreLabel; ++t)
      ex.output_ids.push_back((int32_t)labels[b * T + t]);
    const Encoded e = encode_for_task(ex, nullptr, enc, "case");
    const Sequence& s = e.sequence;
    REQUIRE(s.tokens.size() == n + ex.input_ids.size());
    for (int k = 0; k < n; ++k) CHECK(s.tokens[k] == virtual_slot(k));
    REQUIRE(s.decoder_tokens.size() == n + ex.output_ids.size());
    for (int k = 0; k < n; ++k) {
      CHECK(s.decoder_tokens[k] == virtual_slot(n + k));
      CHECK(s.decoder_labels[k] == kIgnoreLabel);
    }
    for (size_t t = 0; t < ex.output_ids.size(); ++t) {
      CHECK(s.decoder_tokens[n + t] == decoder_ids[b * T + t]);
      CHECK(s.decoder_labels[n + t] == ex.output_ids[t]);
    }
  }
  Example text;
  text.ids = true;
  text.input_ids = {4, 5};
  CHECK_THAT(test::error_message([&] { encode_for_task(text, nullptr, enc, "s.jsonl"); }),
             Contains("SEQ_2_SEQ_LM needs an input and an output"));
}

TEST_CASE("an adapter of another task type or other classes is refused naming file and field",
          "[trainer][task]") {
  AdapterInfo a;
  a.dir = "runs/cls";
  a.task_type = "SEQ_CLS";
  a.labels = {"neg", "pos"};
  const ModelConfig causal = config_of(Stacks::kDecoder, TaskType::kCausalLm);
  CHECK_THAT(test::error_message([&] { check_adapter_task(a, causal); }),
             Contains("runs/cls/adapter_config.json: field \"task_type\" is SEQ_CLS, but the "
                      "model is used as CAUSAL_LM"));
  const ModelConfig other = config_of(Stacks::kEncoder, TaskType::kSeqCls, {"a", "b", "c"});
  CHECK_THAT(test::error_message([&] { check_adapter_task(a, other); }),
             Contains("runs/cls/prompthost_adapter.json: field \"labels\" is [\"neg\",\"pos\"]"));
  const ModelConfig same = config_of(Stacks::kEncoder, TaskType::kSeqCls, {"neg", "pos"});
  CHECK_NOTHROW(check_adapter_task(a, same));
  a.task_type.clear();  // an adapter that does not say (older files): not checked
  a.labels.clear();
  CHECK_NOTHROW(check_adapter_task(a, causal));
}

TEST_CASE(
    "PEFT's SEQ_CLS adapter: modules_to_save listed twice is accepted, the head read "
    "under PEFT's names",
    "[trainer][task]") {
  const std::string dir =
      test::source_path("tests/fixtures/hf/adapters/bert-cls-tiny__prompt_tuning");
  const AdapterInfo a = read_adapter_info(dir);
  CHECK(a.task_type == "SEQ_CLS");
  CHECK(a.info.is_null());
  const SafetensorsFile file(dir + "/adapter_model.safetensors");
  Model model;  // the base model's head, as the bert family loads it (classifier.*)
  model.classifier["classifier.weight"] = xt::zeros<float>({3, 32});
  model.classifier["classifier.bias"] = xt::zeros<float>({3});
  model.classifier["bert.pooler.dense.weight"] = xt::zeros<float>({32, 32});  // frozen
  TrainedHead head = TrainedHead::of_model(model);
  CHECK(head.names() == std::vector<std::string>{"classifier.bias", "classifier.weight"});
  REQUIRE(head.load_adapter(file));
  const FloatTensor want = file.to_float("base_model.classifier.weight");
  CHECK(
      std::equal(want.data, want.data + want.numel, head.values().at("classifier.weight").data()));
  CHECK(is_head_tensor("base_model.score.weight"));
  CHECK_FALSE(is_head_tensor("prompt_embeddings"));

  Model smaller;
  smaller.classifier["classifier.weight"] = xt::zeros<float>({2, 32});
  smaller.classifier["classifier.bias"] = xt::zeros<float>({2});
  TrainedHead wrong = TrainedHead::of_model(smaller);
  CHECK_THAT(
      test::error_message([&] { wrong.load_adapter(file); }),
      Contains("adapter_model.safetensors: tensor base_model.classifier.bias has shape [3]"));
}
