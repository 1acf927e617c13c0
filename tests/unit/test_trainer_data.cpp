// Training data: JSONL reading (every bad line named by file and line), templates, and
// the tokens and labels an example becomes.
#include <catch.hpp>

#include <fstream>
#include <functional>

#include "host/trainer/dataset.h"
#include "models/common/error.h"
#include "test_support.h"

using namespace ph;
using namespace ph::trainer;

namespace {

std::string write_lines(const std::string& name, const std::string& text) {
  const std::string path = test::temp_dir("trainer_data") + "/" + name;
  std::ofstream(path) << text;
  return path;
}

}  // namespace

TEST_CASE("read_jsonl reads text, input/output and task fields", "[trainer]") {
  const auto path = write_lines(
      "ok.jsonl",
      "{\"text\": \"hello\"}\n\n{\"input\": \"a\", \"output\": \" b\", \"task\": \"zippy\"}\n"
      "{\"text\": \"c\", \"task\": 2}\n");
  const auto ex = read_jsonl(path);
  REQUIRE(ex.size() == 3);
  CHECK(ex[0].input == "hello");
  CHECK_FALSE(ex[0].has_output);
  CHECK(ex[1].has_output);
  CHECK(ex[1].output == " b");
  CHECK(ex[1].task == "zippy");
  CHECK(ex[1].line == 3);
  CHECK(ex[2].task == "2");
}

TEST_CASE("bad data lines are errors naming the file and the line", "[trainer]") {
  using Catch::Contains;
  const auto bad_json = write_lines("bad.jsonl", "{\"text\": \"ok\"}\n{\"text\": \"unterminated\n");
  CHECK_THAT(test::error_message([&] { read_jsonl(bad_json); }),
             Contains("bad.jsonl:2: not valid JSON"));
  const auto no_fields = write_lines("fields.jsonl", "{\"input\": \"x\"}\n");
  CHECK_THAT(test::error_message([&] { read_jsonl(no_fields); }),
             Contains("fields.jsonl:1: needs a \"text\" field, or \"input\" and \"output\""));
  const auto wrong_type = write_lines("type.jsonl", "{\"text\": 5}\n");
  CHECK_THAT(test::error_message([&] { read_jsonl(wrong_type); }),
             Contains("type.jsonl:1: field \"text\" must be a string"));
  const auto array = write_lines("array.jsonl", "[1, 2]\n");
  CHECK_THAT(test::error_message([&] { read_jsonl(array); }),
             Contains("array.jsonl:1: expected a JSON object"));
  const auto task = write_lines("task.jsonl", "{\"text\": \"x\", \"task\": -1}\n");
  CHECK_THAT(test::error_message([&] { read_jsonl(task); }),
             Contains("task.jsonl:1: field \"task\""));
  CHECK_THAT(test::error_message([&] { read_jsonl("/nonexistent/data.jsonl"); }),
             Contains("/nonexistent/data.jsonl: cannot open"));
}

TEST_CASE("templates place virtual tokens and text", "[trainer]") {
  const auto parts = parse_template("[P:2] {input} Answer: [P:3] {output}", 5);
  REQUIRE(parts.size() == 5);
  CHECK(parts[0].kind == TemplatePart::kVirtual);
  CHECK(parts[0].count == 2);
  CHECK(parts[1].kind == TemplatePart::kInput);
  CHECK(parts[2].kind == TemplatePart::kLiteral);
  CHECK(parts[2].literal == "Answer:");
  CHECK(parts[3].count == 3);
  CHECK(parts[4].kind == TemplatePart::kOutput);
  using Catch::Contains;
  CHECK_THAT(test::error_message([] { parse_template("[P:2] {input}", 3); }),
             Contains("places 2 virtual tokens, the method has 3"));
  CHECK_THAT(test::error_message([] { parse_template("[P:2 {input}", 2); }), Contains("[P:k]"));
  CHECK_THAT(test::error_message([] { parse_template("[P:0] {input}", 0); }),
             Contains("positive count"));
  CHECK_THAT(test::error_message([] { parse_template("[P:2] {output}", 2); }),
             Contains("has no {input}"));
}

TEST_CASE("an example becomes tokens with virtual slots and labels", "[trainer]") {
  const auto tok = load_tokenizer(test::source_path("models/demo/hf"));
  Example ex;
  ex.input = "Quote: Never trust a computer.\nTopic:";
  ex.output = " computers";
  ex.has_output = true;
  const auto in_ids = tok->encode(ex.input), out_ids = tok->encode(ex.output);
  EncodeOptions enc;
  enc.bos_id = 1;
  enc.eos_id = 2;

  SECTION("PEFT's layout: virtual tokens, BOS, input, output, EOS; output and EOS scored") {
    const Encoded e = encode_example(ex, *tok, default_template(3), enc);
    const auto& s = e.sequence;
    REQUIRE(s.tokens.size() == 3 + 1 + in_ids.size() + out_ids.size() + 1);
    for (int k = 0; k < 3; ++k) CHECK(s.tokens[k] == virtual_slot(k));
    CHECK(s.tokens[3] == 1);
    CHECK(s.tokens.back() == 2);
    CHECK(e.prompt_length == (int)(4 + in_ids.size()));
    for (size_t t = 0; t < s.tokens.size(); ++t) {
      const bool scored = (int)t >= e.prompt_length;
      CHECK(s.labels[t] == (scored ? s.tokens[t] : kIgnoreLabel));
    }
  }
  SECTION("a template puts virtual tokens between input and output") {
    const Encoded e =
        encode_example(ex, *tok, parse_template("[P:2] {input} [P:1] {output}", 3), enc);
    const auto& s = e.sequence;
    CHECK(s.tokens[0] == virtual_slot(0));
    CHECK(s.tokens[1] == virtual_slot(1));
    CHECK(s.tokens[2] == 1);  // BOS before the first text
    const size_t after_input = 3 + in_ids.size();
    CHECK(s.tokens[after_input] == virtual_slot(2));
    CHECK(e.prompt_length == (int)after_input + 1);
    CHECK(s.labels[after_input] == kIgnoreLabel);
    CHECK(s.labels[after_input + 1] == out_ids[0]);
  }
  SECTION("text data: every text token is scored, no EOS") {
    Example text;
    text.input = "Never trust a computer.";
    const Encoded e = encode_example(text, *tok, default_template(0), enc);
    const auto ids = tok->encode(text.input);
    REQUIRE(e.sequence.tokens.size() == ids.size() + 1);
    CHECK(e.sequence.labels[0] == kIgnoreLabel);
    for (size_t i = 0; i < ids.size(); ++i) CHECK(e.sequence.labels[i + 1] == ids[i]);
  }
  SECTION("truncation cuts the input's start and counts what was cut") {
    enc.max_length = 6;
    const Encoded e = encode_example(ex, *tok, default_template(0), enc);
    const size_t real = 1 + in_ids.size() + out_ids.size() + 1;
    CHECK(e.truncated == (int)(real - 6));
    REQUIRE(e.sequence.tokens.size() == 6);
    CHECK(e.sequence.tokens[0] == 1);      // BOS kept
    CHECK(e.sequence.tokens.back() == 2);  // the output and EOS kept
  }
}

TEST_CASE("tasks map names and indices to ids", "[trainer]") {
  TaskMap tasks;
  Example a, b, c;
  a.task = "zippy";
  b.task = "politics";
  c.task = "weather";
  a.line = 1, b.line = 2, c.line = 7;
  CHECK(tasks.id(a, "f", true) == 0);
  CHECK(tasks.id(b, "f", true) == 1);
  CHECK(tasks.id(a, "f", false) == 0);
  CHECK_THAT(test::error_message([&] { tasks.id(c, "f.jsonl", false); }),
             Catch::Contains("f.jsonl:7: unknown task \"weather\" (known: zippy, politics)"));
  Example none;
  none.line = 3;
  CHECK_THAT(test::error_message([&] { tasks.id(none, "f.jsonl", false); }),
             Catch::Contains("needs a \"task\""));

  // whole files: no "task" field at all is one task (id 0) for a per-task method
  Example other;
  other.line = 4;
  CHECK(tasks.ids({none, other}, "f.jsonl", false, true) == std::vector<int64_t>{0, 0});
  CHECK(tasks.ids({none, other}, "f.jsonl", false, false) == std::vector<int64_t>{-1, -1});
  CHECK(tasks.ids({b, none}, "f.jsonl", false, false) == std::vector<int64_t>{1, -1});
  CHECK_THAT(test::error_message([&] {
               tasks.ids({b, none}, "f.jsonl", false, true);
             }),
             Catch::Contains("f.jsonl:3: the method needs a \"task\""));
}
