// The tokenizer.json files of BERT (WordPiece), RoBERTa and Bloom (byte-level BPE with
// their post-processors), Gemma (BPE with byte fallback) and T5 (Unigram with a
// Precompiled normalizer), and T5's spiece.model, against the ids Hugging Face's
// tokenizers gives: tests/fixtures/tokenizers/<family>/ (make_family_tokenizers.mjs cut
// them from the real files; make_family_expected.mjs wrote expected.json with the
// `tokenizers` npm package). Each case: the ids without and with the special tokens, the
// type ids, the tokens' spelling and the decoded text; each pair of texts: ids and type
// ids with and without the special tokens.
#include <catch.hpp>

#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "models/tokenizer/text_util.h"
#include "models/tokenizer/tokenizer.h"
#include "test_support.h"

namespace {

using json = nlohmann::json;
using Ids = std::vector<int32_t>;

std::string family_dir(const std::string& family) {
  return ph::test::fixtures_dir() + "/tokenizers/" + family;
}

json read_json(const std::string& path) {
  return json::parse(ph::tok::read_file(path, "test input"));
}

// Every case and pair of `expected` (make_family_expected.mjs's file) with `tokenizer`.
void check_expected(const ph::Tokenizer& tokenizer, const json& expected) {
  REQUIRE(expected.at("cases").size() >= 15);
  for (const json& c : expected.at("cases")) {
    const std::string text = c.at("text");
    INFO("text: " << text);
    const Ids ids = tokenizer.encode(text);
    CHECK(ids == c.at("ids").get<Ids>());
    // The vocabulary's spelling, but where Hugging Face's Encoding.tokens shows the text
    // itself: for an unknown token ("٣٤٥" for T5's <unk>) and for an added token with the
    // whitespace it stripped (" <mask>" for RoBERTa's).
    const auto hf_tokens = c.at("tokens").get<std::vector<std::string>>();
    REQUIRE(hf_tokens.size() == ids.size());
    for (size_t i = 0; i < ids.size(); ++i) {
      const std::string piece = tokenizer.piece(ids[i]);
      const bool shown_as_text =
          piece == "<unk>" || piece == "[UNK]" ||
          (hf_tokens[i].size() > piece.size() && hf_tokens[i].find(piece) != std::string::npos &&
           hf_tokens[i].find_first_not_of(" ") == hf_tokens[i].find(piece));
      if (!shown_as_text) CHECK(piece == hf_tokens[i]);
    }
    CHECK(tokenizer.decode(c.at("ids").get<Ids>()) == c.at("decoded").get<std::string>());
    const ph::Encoding model = tokenizer.encode_for_model(text);
    CHECK(model.ids == c.at("model_ids").get<Ids>());
    CHECK(model.type_ids == c.at("model_type_ids").get<Ids>());
    const ph::Encoding plain = tokenizer.encode_for_model(text, false);
    CHECK(plain.ids == ids);
    CHECK(plain.type_ids == Ids(ids.size(), 0));
  }
  REQUIRE(expected.at("pairs").size() >= 3);
  for (const json& p : expected.at("pairs")) {
    const std::string first = p.at("first"), second = p.at("second");
    INFO("pair: " << first << " | " << second);
    const ph::Encoding model = tokenizer.encode_pair(first, second);
    CHECK(model.ids == p.at("ids").get<Ids>());
    CHECK(model.type_ids == p.at("type_ids").get<Ids>());
    const ph::Encoding plain = tokenizer.encode_pair(first, second, false);
    CHECK(plain.ids == p.at("plain_ids").get<Ids>());
    CHECK(plain.type_ids == p.at("plain_type_ids").get<Ids>());
  }
}

void check_family(const std::string& family) {
  const auto tokenizer = ph::load_tokenizer(family_dir(family) + "/tokenizer.json");
  check_expected(*tokenizer, read_json(family_dir(family) + "/expected.json"));
}

// The T5 file with each variant's normalizer (its Precompiled one, then the variant's)
// and pre-tokenizer.
void check_variants(const std::string& tokenizer_path, const json& expected) {
  const json spec = read_json(tokenizer_path);
  const json& cases = expected.at("cases");
  int index = 0;
  for (const auto& [name, variant] : expected.at("variants").items()) {
    json edited = spec;
    json normalizers = json::array({spec.at("normalizer").at("normalizers").at(0)});
    for (const json& part : variant.at("after_precompiled")) normalizers.push_back(part);
    edited["normalizer"] = {{"type", "Sequence"}, {"normalizers", normalizers}};
    edited["pre_tokenizer"] = variant.at("pre_tokenizer");
    const std::string path =
        ph::test::temp_dir("family_variant_" + std::to_string(index++)) + "/tokenizer.json";
    std::ofstream(path, std::ios::binary) << edited.dump();
    const auto tokenizer = ph::load_tokenizer(path);
    for (size_t i = 0; i < cases.size(); ++i) {
      INFO("variant " << name << ", text: " << cases[i].at("text").get<std::string>());
      CHECK(tokenizer->encode(cases[i].at("text").get<std::string>()) ==
            variant.at("ids")[i].get<Ids>());
    }
  }
}

}  // namespace

TEST_CASE("BERT's WordPiece tokenizer.json gives Hugging Face's ids", "[tokenizer][families]") {
  check_family("bert");
  const auto bert = ph::load_tokenizer(family_dir("bert"));
  // [CLS] a [SEP] b [SEP]: the second text and its [SEP] are segment 1.
  const ph::Encoding pair = bert->encode_pair("a", "b");
  CHECK(bert->piece(pair.ids.front()) == "[CLS]");
  CHECK(pair.type_ids == Ids{0, 0, 0, 1, 1});
  CHECK(bert->bos_id() == -1);
}

TEST_CASE("RoBERTa's byte-level BPE with RobertaProcessing gives Hugging Face's ids",
          "[tokenizer][families]") {
  check_family("roberta");
  const auto roberta = ph::load_tokenizer(family_dir("roberta"));
  // <s> a </s></s> b </s>, every type id 0.
  const ph::Encoding pair = roberta->encode_pair("a", "b");
  CHECK(pair.ids.size() == 6);
  CHECK(pair.ids[2] == 2);
  CHECK(pair.ids[3] == 2);
  CHECK(pair.type_ids == Ids(6, 0));
}

TEST_CASE("Bloom's tokenizer.json (a class nested in a class) gives Hugging Face's ids",
          "[tokenizer][families]") {
  check_family("bloom");
}

TEST_CASE("Gemma's tokenizer.json gives Hugging Face's ids", "[tokenizer][families]") {
  check_family("gemma");
  const auto gemma = ph::load_tokenizer(family_dir("gemma"));
  CHECK(gemma->piece(gemma->encode_for_model("x").ids.front()) == "<bos>");
}

TEST_CASE("T5's Unigram tokenizer.json gives Hugging Face's ids", "[tokenizer][families]") {
  check_family("t5");
  const json expected = read_json(family_dir("t5") + "/expected.json");
  REQUIRE(expected.at("variants").size() == 1);
  check_variants(family_dir("t5") + "/tokenizer.json", expected);
}

TEST_CASE("T5's spiece.model through SentencePiece: unigram, EOS appended, no BOS",
          "[tokenizer][families]") {
  const auto spiece = ph::load_tokenizer(family_dir("t5") + "/spiece.model");
  CHECK(spiece->bos_id() == -1);
  CHECK(spiece->piece(spiece->eos_id()) == "</s>");
  const ph::Encoding hello = spiece->encode_for_model("Hello");
  CHECK(hello.ids.back() == spiece->eos_id());
  CHECK(spiece->encode_pair("a", "b").type_ids == Ids(spiece->encode_pair("a", "b").ids.size(), 0));
  // SentencePiece's own ids are Hugging Face's for the tokenizer.json converted from the
  // model, but for two texts: special tokens' literal text ("</s>", "<extra_id_0>"), which
  // SentencePiece reads as text; and the full-width "Ａ" with an accent on it, whose whole
  // grapheme Hugging Face's Precompiled normalizer replaces by "A" (its rule: the start of
  // a short grapheme has a rule), where SentencePiece keeps the accent, as an unknown piece.
  const json expected = read_json(family_dir("t5") + "/expected.json");
  int same = 0, differ = 0;
  for (const json& c : expected.at("cases")) {
    const std::string text = c.at("text");
    INFO("text: " << text);
    const Ids ids = spiece->encode_for_model(text).ids;
    const bool exception = text.find("<extra_id_0>") != std::string::npos ||
                           text.find("\xEF\xBC\xA1\xCC\x81") != std::string::npos;  // Ａ́
    if (exception) {
      CHECK(ids != c.at("model_ids").get<Ids>());
      ++differ;
    } else {
      CHECK(ids == c.at("model_ids").get<Ids>());
      ++same;
    }
  }
  CHECK(differ == 2);
  CHECK(same >= 15);
}

// Run by the CTest test tokenizer_reference (tests/cli/tokenizer_reference.cmake) with a
// tokenizer.json and the ids make_family_expected.mjs wrote for it just before, from the
// `tokenizers` npm package: Gemma's whole tokenizer.json and bert-base-uncased's.
TEST_CASE("a family's whole tokenizer.json against Hugging Face's ids written just now",
          "[.reference]") {
  const char* tokenizer_path = std::getenv("PH_REFERENCE_TOKENIZER");
  const char* expected_path = std::getenv("PH_REFERENCE_EXPECTED");
  REQUIRE(tokenizer_path);
  REQUIRE(expected_path);
  const auto tokenizer = ph::load_tokenizer(tokenizer_path);
  check_expected(*tokenizer, read_json(expected_path));
}
