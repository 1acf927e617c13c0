// Hugging Face tokenizer.json features on small hand-made tokenizers, each built so that
// the ids show which rule applied: Split behaviours, Metaspace, added tokens, unknown
// tokens, subword prefixes and suffixes, BOS/EOS from tokenizer_config.json.
#include <catch.hpp>

#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "models/common/error.h"
#include "models/tokenizer/tokenizer.h"
#include "test_support.h"

namespace {

using json = nlohmann::json;
using Ids = std::vector<int32_t>;
using Catch::Matchers::Contains;

const std::string kSpace = "\xE2\x96\x81";  // "▁"

// A tokenizer.json with a BPE model; the other fields are null unless `extra` sets them.
json bpe_spec(const json& vocab, const json& merges, const json& extra = json::object()) {
  json spec = {
      {"version", "1.0"},      {"added_tokens", json::array()},
      {"normalizer", nullptr}, {"pre_tokenizer", nullptr},
      {"decoder", nullptr},    {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", merges}}}};
  spec.update(extra);
  return spec;
}

// Writes `spec` (and a tokenizer_config.json, unless null) into a fresh folder.
std::string write_folder(const std::string& name, const json& spec, const json& config = nullptr) {
  const std::string dir = ph::test::temp_dir(name);
  std::ofstream(dir + "/tokenizer.json") << spec.dump();
  if (!config.is_null()) std::ofstream(dir + "/tokenizer_config.json") << config.dump();
  return dir;
}

std::unique_ptr<ph::Tokenizer> load_spec(const std::string& name, const json& spec,
                                         const json& config = nullptr) {
  return ph::load_tokenizer(write_folder(name, spec, config));
}

json split_on_dash(const std::string& behavior, bool invert = false) {
  return {{"type", "Split"},
          {"pattern", {{"String", "-"}}},
          {"behavior", behavior},
          {"invert", invert}};
}

}  // namespace

TEST_CASE("Split pre-tokenizer behaviours", "[tokenizer][hf]") {
  // ignore_merges: a piece that is a token is that token, so the ids show the pieces.
  const json vocab = {{"a", 0}, {"b", 1}, {"-", 2}, {"a-", 3}, {"-b", 4}, {"--", 5}};
  const auto make = [&](const json& pre_tokenizer) {
    json spec = bpe_spec(vocab, json::array(), {{"pre_tokenizer", pre_tokenizer}});
    spec["model"]["ignore_merges"] = true;
    return load_spec("hf_split", spec);
  };
  CHECK(make(split_on_dash("Isolated"))->encode("a-b") == Ids{0, 2, 1});
  CHECK(make(split_on_dash("Isolated"))->encode("a--b") == Ids{0, 2, 2, 1});
  CHECK(make(split_on_dash("Removed"))->encode("a-b") == Ids{0, 1});
  CHECK(make(split_on_dash("MergedWithPrevious"))->encode("a-b") == Ids{3, 1});
  CHECK(make(split_on_dash("MergedWithNext"))->encode("a-b") == Ids{0, 4});
  CHECK(make(split_on_dash("Contiguous"))->encode("a--b") == Ids{0, 5, 1});
  // Inverted, the text between the dashes is the "match" that Removed drops.
  CHECK(make(split_on_dash("Removed", true))->encode("a-b") == Ids{2});
  const json regex = {{"type", "Split"},
                      {"pattern", {{"Regex", "-+"}}},
                      {"behavior", "Isolated"},
                      {"invert", false}};
  const auto tokenizer = make(regex);
  CHECK(tokenizer->encode("a--b") == Ids{0, 5, 1});
  // No decoder: the tokens' text, joined.
  CHECK(tokenizer->decode({0, 5, 1}) == "a--b");
}

TEST_CASE("Metaspace pre-tokenizer and decoder", "[tokenizer][hf]") {
  const json vocab = {{kSpace + "hello", 0}, {kSpace + "world", 1}, {"hello", 2}, {"<x>", 3}};
  const auto make = [&](const std::string& scheme) {
    json spec = bpe_spec(
        vocab, json::array(),
        {{"pre_tokenizer",
          {{"type", "Metaspace"},
           {"replacement", kSpace},
           {"prepend_scheme", scheme},
           {"split", true}}},
         {"decoder", {{"type", "Metaspace"}, {"replacement", kSpace}, {"prepend_scheme", scheme}}},
         {"added_tokens",
          {{{"id", 3}, {"content", "<x>"}, {"special", false}, {"normalized", false}}}}});
    spec["model"]["ignore_merges"] = true;
    return load_spec("hf_metaspace", spec);
  };
  const auto always = make("always");
  CHECK(always->encode("hello world") == Ids{0, 1});
  CHECK(always->decode({0, 1}) == "hello world");
  // "always" prepends to the text after an added token too; "first" only at the start.
  CHECK(always->encode("hello<x>hello") == Ids{0, 3, 0});
  const auto first = make("first");
  CHECK(first->encode("hello<x>hello") == Ids{0, 3, 2});
  CHECK(first->decode({0, 3, 2}) == "hello<x>hello");
  CHECK(make("never")->encode("hello world") == Ids{2, 1});
}

TEST_CASE("added tokens: longest match, lstrip/rstrip, special ones decode to nothing",
          "[tokenizer][hf]") {
  // The merge as a [left, right] pair (json::array, as {"a", " "} would read as an object).
  json spec =
      bpe_spec({{"a", 0}, {"b", 1}, {" ", 2}, {"a ", 3}}, json::array({json::array({"a", " "})}));
  spec["added_tokens"] = {
      {{"id", 10}, {"content", "<m>"}, {"special", true}, {"rstrip", true}},
      {{"id", 11}, {"content", "<l>"}, {"special", true}, {"lstrip", true}},
      {{"id", 12}, {"content", "<ab>"}, {"special", false}},
      {{"id", 13}, {"content", "<ab>b"}, {"special", false}},
  };
  const auto tokenizer = load_spec("hf_added", spec);
  CHECK(tokenizer->vocab_size() == 14);
  // "a " merges; <m> swallows the spaces after it, <l> those before it.
  CHECK(tokenizer->encode("a <m>  b") == Ids{3, 10, 1});
  CHECK(tokenizer->encode("a  <l>b") == Ids{0, 11, 1});
  // The longest added token at the leftmost position.
  CHECK(tokenizer->encode("<ab>bb") == Ids{13, 1});
  CHECK(tokenizer->encode("<ab>a") == Ids{12, 0});
  CHECK(tokenizer->decode({3, 10, 1, 12}) == "a b<ab>");
  // Ids 4..9 are neither in the vocabulary nor added.
  CHECK_THROWS_AS(tokenizer->decode({5}), ph::Error);
  CHECK_THROWS_AS(tokenizer->decode({-1}), ph::Error);
  CHECK_THROWS_AS(tokenizer->decode({14}), ph::Error);
}

TEST_CASE("unknown characters: unk token, fused or not, or dropped", "[tokenizer][hf]") {
  const json vocab = {{"<unk>", 0}, {"x", 1}, {"y", 2}};
  json spec = bpe_spec(vocab, json::array());
  CHECK(load_spec("hf_unk_none", spec)->encode("x??y") == Ids{1, 2});
  spec["model"]["unk_token"] = "<unk>";
  CHECK(load_spec("hf_unk", spec)->encode("x??y") == Ids{1, 0, 0, 2});
  spec["model"]["fuse_unk"] = true;
  CHECK(load_spec("hf_unk_fused", spec)->encode("x??y€") == Ids{1, 0, 2, 0});
}

TEST_CASE("byte fallback to <0xXX> pieces", "[tokenizer][hf]") {
  json vocab = {{"<unk>", 0}, {"c", 1}, {"a", 2}};
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof name, "<0x%02X>", b);
    vocab[name] = 3 + b;
  }
  json spec = bpe_spec(
      vocab, json::array(),
      {{"decoder",
        {{"type", "Sequence"}, {"decoders", {{{"type", "ByteFallback"}}, {{"type", "Fuse"}}}}}}});
  spec["model"]["unk_token"] = "<unk>";
  spec["model"]["byte_fallback"] = true;
  const auto tokenizer = load_spec("hf_byte_fallback", spec);
  // "é" is C3 A9.
  const Ids ids = tokenizer->encode("caé");
  CHECK(ids == Ids{1, 2, 3 + 0xC3, 3 + 0xA9});
  CHECK(tokenizer->decode(ids) == "caé");
}

TEST_CASE("continuing-subword prefix and end-of-word suffix", "[tokenizer][hf]") {
  json prefixed = bpe_spec({{"a", 0}, {"##b", 1}, {"ab", 2}, {"##c", 3}}, {"a ##b"});
  prefixed["model"]["continuing_subword_prefix"] = "##";
  // "a" + "##b" merge into "ab" (the prefix is not repeated); "c" is "##c" inside a word.
  CHECK(load_spec("hf_prefix", prefixed)->encode("abc") == Ids{2, 3});

  json suffixed = bpe_spec({{"a", 0}, {"b</w>", 1}, {"ab</w>", 2}, {"b", 3}}, {"a b</w>"});
  suffixed["model"]["end_of_word_suffix"] = "</w>";
  const auto tokenizer = load_spec("hf_suffix", suffixed);
  CHECK(tokenizer->encode("ab") == Ids{2});
}

TEST_CASE("normalizers: Strip, Prepend, Replace", "[tokenizer][hf]") {
  const json normalizer = {
      {"type", "Sequence"},
      {"normalizers",
       {{{"type", "Strip"}, {"strip_left", true}, {"strip_right", true}},
        {{"type", "Replace"}, {"pattern", {{"Regex", "[0-9]+"}}}, {"content", "#"}},
        {{"type", "Prepend"}, {"prepend", "^"}}}}};
  const auto tokenizer = load_spec(
      "hf_normalizers",
      bpe_spec({{"^", 0}, {"a", 1}, {"#", 2}}, json::array(), {{"normalizer", normalizer}}));
  CHECK(tokenizer->encode(" \t a123a\u3000\n") == Ids{0, 1, 2, 1});
  // Prepend leaves an empty text empty; Strip can make it empty.
  CHECK(tokenizer->encode("").empty());
  CHECK(tokenizer->encode("  ").empty());
}

TEST_CASE("BOS/EOS from special added tokens or tokenizer_config.json", "[tokenizer][hf]") {
  json spec = bpe_spec({{"a", 0}}, json::array());
  spec["added_tokens"] = {{{"id", 1}, {"content", "<|im_start|>"}, {"special", true}},
                          {{"id", 2}, {"content", "<|im_end|>"}, {"special", true}},
                          {{"id", 3}, {"content", "<|endoftext|>"}, {"special", true}},
                          {{"id", 4}, {"content", "</s>"}, {"special", false}}};
  // By name, in order of preference; a non-special "</s>" does not count.
  const auto by_name = load_spec("hf_bos_by_name", spec);
  CHECK(by_name->bos_id() == 3);
  CHECK(by_name->eos_id() == 3);

  const auto configured =
      load_spec("hf_bos_config", spec,
                {{"bos_token", {{"content", "<|im_start|>"}, {"special", true}}},
                 {"eos_token", "<|im_end|>"}});
  CHECK(configured->bos_id() == 1);
  CHECK(configured->eos_id() == 2);

  const auto without_bos =
      load_spec("hf_bos_null", spec, {{"bos_token", nullptr}, {"eos_token", "</s>"}});
  CHECK(without_bos->bos_id() == -1);
  CHECK(without_bos->eos_id() == 4);

  const std::string unknown = write_folder("hf_bos_unknown", spec, {{"bos_token", "<s>"}});
  CHECK_THROWS_WITH(ph::load_tokenizer(unknown),
                    Contains("tokenizer_config.json") && Contains("'<s>'"));

  const std::string broken = write_folder("hf_bos_broken", spec);
  std::ofstream(broken + "/tokenizer_config.json") << "{\"bos_token\": ";
  CHECK_THROWS_WITH(ph::load_tokenizer(broken),
                    Contains("tokenizer_config.json") && Contains("not valid JSON"));
}
