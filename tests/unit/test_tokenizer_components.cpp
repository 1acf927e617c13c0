// The WordPiece and Unigram models, the Precompiled normalizer and the post-processors on
// small hand-made tokenizer.json files, each built so that the ids show which rule
// applied; and what malformed or hostile files of these kinds give: an error naming the
// file and the field, never a crash or a silent wrong answer.
#include <catch.hpp>

#include <chrono>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "models/common/error.h"
#include "models/tokenizer/precompiled_charsmap.h"
#include "models/tokenizer/tokenizer.h"
#include "test_support.h"

namespace {

using json = nlohmann::json;
using Ids = std::vector<int32_t>;
using Catch::Matchers::Contains;

std::unique_ptr<ph::Tokenizer> load_spec(const std::string& name, const json& spec) {
  const std::string path = ph::test::temp_dir(name) + "/tokenizer.json";
  std::ofstream(path, std::ios::binary) << spec.dump();
  return ph::load_tokenizer(path);
}

// [[piece, score], ...] (a braced list of pairs would be a JSON object).
json pieces(std::initializer_list<std::pair<const char*, json>> list) {
  json out = json::array();
  for (const auto& [piece, score] : list) out.push_back(json::array({piece, score}));
  return out;
}

json wordpiece(const json& vocab, const json& extra = json::object()) {
  json spec = {{"added_tokens", json::array()},
               {"normalizer", nullptr},
               {"pre_tokenizer", {{"type", "WhitespaceSplit"}}},
               {"post_processor", nullptr},
               {"decoder", {{"type", "WordPiece"}, {"prefix", "##"}, {"cleanup", true}}},
               {"model",
                {{"type", "WordPiece"},
                 {"unk_token", "[UNK]"},
                 {"continuing_subword_prefix", "##"},
                 {"max_input_chars_per_word", 10},
                 {"vocab", vocab}}}};
  spec.update(extra);
  return spec;
}

json unigram(const json& vocab, const json& unk_id, bool byte_fallback = false) {
  return {{"added_tokens", json::array()},
          {"normalizer", nullptr},
          {"pre_tokenizer", nullptr},
          {"post_processor", nullptr},
          {"decoder", nullptr},
          {"model",
           {{"type", "Unigram"},
            {"unk_id", unk_id},
            {"vocab", vocab},
            {"byte_fallback", byte_fallback}}}};
}

// A precompiled_charsmap of one rule, "A" -> "b", as SentencePiece compiles it: the
// double-array units (root, the unit for "A" with a leaf, the leaf holding offset 0 of
// the replacements), then "b\0".
std::string one_rule_charsmap() {
  // Root: offset 1 (so "A" = 0x41 sits at 1 ^ 0x41 = 0x40). Unit 0x40: label 0x41, a leaf,
  // offset 0x40 ^ 0x41 = 1 -> the leaf at 0x40 ^ 1 = 0x41 holds value 0.
  // 256 units, as darts-clone pads its arrays: an offset XOR a byte stays inside.
  std::vector<uint32_t> units(256, 0);
  units[0] = 1u << 10;                          // offset 1
  units[0x40] = 0x41 | (1u << 8) | (1u << 10);  // label "A", has a leaf, offset 1
  units[0x41] = 0;                              // the leaf's value: replacement offset 0
  std::string blob(4, '\0');
  const uint32_t bytes = static_cast<uint32_t>(units.size() * 4);
  std::memcpy(&blob[0], &bytes, 4);
  blob.append(reinterpret_cast<const char*>(units.data()), bytes);
  blob += std::string("b\0", 2);
  return blob;
}

std::string base64(const std::string& bytes) {
  static const char kDigits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  for (size_t i = 0; i < bytes.size(); i += 3) {
    uint32_t bits = static_cast<unsigned char>(bytes[i]) << 16;
    if (i + 1 < bytes.size()) bits |= static_cast<unsigned char>(bytes[i + 1]) << 8;
    if (i + 2 < bytes.size()) bits |= static_cast<unsigned char>(bytes[i + 2]);
    out += kDigits[(bits >> 18) & 63];
    out += kDigits[(bits >> 12) & 63];
    out += i + 1 < bytes.size() ? kDigits[(bits >> 6) & 63] : '=';
    out += i + 2 < bytes.size() ? kDigits[bits & 63] : '=';
  }
  return out;
}

}  // namespace

TEST_CASE("WordPiece: longest pieces, ## continuations, unknown words whole",
          "[tokenizer][components]") {
  const json vocab = {{"[UNK]", 0}, {"un", 1},  {"##aff", 2}, {"##able", 3},
                      {"u", 4},     {"##n", 5}, {"a", 6},     {"##b", 7}};
  const auto tokenizer = load_spec("wp_basic", wordpiece(vocab));
  CHECK(tokenizer->encode("unaffable") == Ids{1, 2, 3});  // "un", not "u" "##n"
  // A word with a part no piece covers is unknown as a whole, not "un" + [UNK].
  CHECK(tokenizer->encode("unaffxable") == Ids{0});
  // More characters than max_input_chars_per_word (10): unknown, though pieces cover it.
  CHECK(tokenizer->encode("abbbbbbbbb") == Ids{6, 7, 7, 7, 7, 7, 7, 7, 7, 7});
  CHECK(tokenizer->encode("abbbbbbbbbb") == Ids{0});
  // Decoding joins continuations and spaces the rest.
  CHECK(tokenizer->decode({1, 2, 3, 6, 7}) == "unaffable ab");

  // The unknown token must be a token: refused when the file is loaded.
  CHECK_THROWS_WITH(load_spec("wp_no_unk", wordpiece({{"a", 0}})),
                    Contains("tokenizer.json") && Contains("model.unk_token '[UNK]'"));
  json bad = wordpiece(vocab);
  bad["model"]["max_input_chars_per_word"] = -1;
  CHECK_THROWS_WITH(load_spec("wp_bad_max", bad), Contains("max_input_chars_per_word"));
}

TEST_CASE("WordPiece on a long word takes time linear in it", "[tokenizer][components]") {
  json spec = wordpiece({{"[UNK]", 0}, {"a", 1}, {"##a", 2}});
  spec["model"]["max_input_chars_per_word"] = 100000000;
  const auto tokenizer = load_spec("wp_long", spec);
  const auto start = std::chrono::steady_clock::now();
  const Ids ids = tokenizer->encode(std::string(200000, 'a'));
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  CHECK(ids.size() == 200000);
  // Quadratic would be 2*10^10 steps: minutes, which CTest's timeout stops. The time is
  // reported, not asserted (a loaded machine or a sanitizer build varies it severalfold).
  WARN("WordPiece on a 200,000-character word: " << seconds << " s");
}

TEST_CASE("Unigram: the best-scoring split, unknown runs fused, byte fallback",
          "[tokenizer][components]") {
  const json vocab = pieces({{"<unk>", 0.0},
                             {"a", -1.0},
                             {"b", -1.0},
                             {"ab", -1.5},
                             {"abc", -5.0},
                             {"c", -1.0},
                             {"<0x78>", -3.0}});
  const auto tokenizer = load_spec("uni_basic", unigram(vocab, 0));
  // "ab" (-1.5) beats "a" + "b" (-2); "abc" (-5) loses to "ab" + "c" (-2.5).
  CHECK(tokenizer->encode("ab") == Ids{3});
  CHECK(tokenizer->encode("abc") == Ids{3, 5});
  // Uncovered characters: one unknown token per run.
  CHECK(tokenizer->encode("a\xE2\x98\x83\xE2\x98\x83"
                          "b") == Ids{1, 0, 2});
  // With byte_fallback a run becomes the bytes' pieces, if every byte has one.
  const auto fallback = load_spec("uni_bytes", unigram(vocab, 0, true));
  CHECK(fallback->encode("axb") == Ids{1, 6, 2});
  CHECK(fallback->encode("a\xE2\x98\x83") == Ids{1, 0});

  // No unknown token and a character no piece covers: an error naming the file.
  const auto no_unk = load_spec("uni_no_unk", unigram(vocab, nullptr));
  CHECK(no_unk->encode("abc") == Ids{3, 5});
  CHECK_THROWS_WITH(no_unk->encode("z"), Contains("tokenizer.json") && Contains("unk_id"));

  CHECK_THROWS_WITH(load_spec("uni_bad_unk", unigram(vocab, 7)),
                    Contains("model.unk_id 7") && Contains("7 of model.vocab"));
  CHECK_THROWS_WITH(load_spec("uni_bad_entry", unigram(pieces({{"a", "high"}}), 0)),
                    Contains("model.vocab[0]") && Contains("[piece, score]"));
  CHECK_THROWS_WITH(load_spec("uni_not_list", unigram({{"a", 1.0}}, 0)),
                    Contains("model.vocab is not a list"));
}

TEST_CASE("Precompiled normalizer: rules by grapheme, malformed charsmaps refused",
          "[tokenizer][components]") {
  const ph::tok::PrecompiledCharsMap map(one_rule_charsmap(), "test");
  CHECK(map.normalize("xAy") == "xby");
  // A grapheme that starts with a rule's source is replaced whole (Hugging Face's rule):
  // "A" + U+0301 becomes "b", the accent gone.
  CHECK(map.normalize("A\xCC\x81z") == "bz");
  CHECK(map.normalize("") == "");

  json spec = unigram(pieces({{"<unk>", 0.0}, {"b", -1.0}, {"x", -1.0}}), 0);
  spec["normalizer"] = {{"type", "Precompiled"},
                        {"precompiled_charsmap", base64(one_rule_charsmap())}};
  CHECK(load_spec("pc_ok", spec)->encode("xA") == Ids{2, 1});

  spec["normalizer"]["precompiled_charsmap"] = "not base64!";
  CHECK_THROWS_WITH(load_spec("pc_bad64", spec), Contains("tokenizer.json") &&
                                                     Contains("precompiled_charsmap") &&
                                                     Contains("base64"));
  spec["normalizer"]["precompiled_charsmap"] = base64(std::string("\xFF\xFF\x00\x00", 4));
  CHECK_THROWS_WITH(load_spec("pc_size", spec), Contains("trie size 65535"));
  // A trie whose units point outside it: an error when a text meets it, not a crash.
  std::string wild = one_rule_charsmap();
  const uint32_t far = 0x41 | (1u << 8) | (0xFFFFFu << 10);
  std::memcpy(&wild[4 + 0x40 * 4], &far, 4);
  spec["normalizer"]["precompiled_charsmap"] = base64(wild);
  const auto tokenizer = load_spec("pc_wild", spec);
  CHECK_THROWS_WITH(tokenizer->encode("A"), Contains("points outside"));
}

TEST_CASE("post-processors: templates, type ids, and their errors", "[tokenizer][components]") {
  const json vocab = {{"[UNK]", 0}, {"[CLS]", 1}, {"[SEP]", 2}, {"a", 3}, {"b", 4}};
  json spec = wordpiece(vocab);
  spec["post_processor"] = {
      {"type", "BertProcessing"}, {"sep", {"[SEP]", 2}}, {"cls", {"[CLS]", 1}}};
  auto tokenizer = load_spec("pp_bert", spec);
  CHECK(tokenizer->encode_for_model("a").ids == Ids{1, 3, 2});
  CHECK(tokenizer->encode_pair("a", "b").ids == Ids{1, 3, 2, 4, 2});
  CHECK(tokenizer->encode_pair("a", "b").type_ids == Ids{0, 0, 0, 1, 1});
  CHECK(tokenizer->encode_pair("a", "b", false).type_ids == Ids{0, 1});

  // The string form of template pieces, and several ids for one special token.
  spec["post_processor"] = {
      {"type", "TemplateProcessing"},
      {"single", {"[CLS]", "$A", "[SEP]"}},
      {"pair", {"[CLS]", "$A", "[SEP]", "$B:1", "[SEP]:1"}},
      {"special_tokens",
       {{"[CLS]", {{"id", "[CLS]"}, {"ids", {1, 1}}, {"tokens", {"[CLS]", "[CLS]"}}}},
        {"[SEP]", {{"id", "[SEP]"}, {"ids", {2}}, {"tokens", {"[SEP]"}}}}}}};
  tokenizer = load_spec("pp_template", spec);
  CHECK(tokenizer->encode_for_model("a").ids == Ids{1, 1, 3, 2});
  CHECK(tokenizer->encode_pair("a", "b").type_ids == Ids{0, 0, 0, 0, 1, 1});

  json unlisted = spec;
  unlisted["post_processor"]["special_tokens"].erase("[SEP]");
  CHECK_THROWS_WITH(load_spec("pp_unlisted", unlisted),
                    Contains("post_processor.special_tokens") && Contains("'[SEP]'"));
  json bad_id = spec;
  bad_id["post_processor"]["special_tokens"]["[SEP]"]["ids"] = {99};
  CHECK_THROWS_WITH(load_spec("pp_bad_id", bad_id),
                    Contains("tokenizer.json") && Contains("99 is not a token"));
  json b_in_single = spec;
  b_in_single["post_processor"]["single"] = {"$B"};
  CHECK_THROWS_WITH(load_spec("pp_b_single", b_in_single), Contains("post_processor.single"));
  json two = spec;
  two["post_processor"] = {{"type", "Sequence"},
                           {"processors", {spec["post_processor"], spec["post_processor"]}}};
  CHECK_THROWS_WITH(load_spec("pp_two", two), Contains("a second processor"));
  json roberta = spec;
  roberta["post_processor"] = {{"type", "RobertaProcessing"}, {"sep", {"[SEP]", 2}}};
  CHECK_THROWS_WITH(load_spec("pp_roberta_cls", roberta), Contains("post_processor.cls"));
}

TEST_CASE("BertNormalizer and BertPreTokenizer", "[tokenizer][components]") {
  const json vocab = {{"[UNK]", 0}, {"hello", 1}, {"cafe", 2}, {",", 3},
                      {"日", 4},    {"本", 5},    {"i", 6},    {"##\xCC\x87", 7}};
  json spec = wordpiece(vocab, {{"pre_tokenizer", {{"type", "BertPreTokenizer"}}}});
  spec["model"]["max_input_chars_per_word"] = 100;
  spec["normalizer"] = {{"type", "BertNormalizer"}, {"lowercase", true}};
  const auto uncased = load_spec("bert_uncased", spec);
  // Lowercased, accents stripped, CJK spaced out, punctuation its own word, controls gone.
  CHECK(uncased->encode("HELLO,Caf\xC3\xA9\x07日本") == Ids{1, 3, 2, 4, 5});
  spec["normalizer"] = {{"type", "BertNormalizer"}, {"lowercase", true}, {"strip_accents", false}};
  // Without stripping, "İ" lowercases as Rust does: "i" + U+0307.
  CHECK(load_spec("bert_keep", spec)->encode("\xC4\xB0") == Ids{6, 7});
  spec["normalizer"]["lowercase"] = "yes";
  CHECK_THROWS_WITH(load_spec("bert_bad", spec), Contains("BertNormalizer.lowercase"));
}

TEST_CASE("a class nested in a class (Oniguruma) becomes their union; a negated one is refused",
          "[tokenizer][components]") {
  const json vocab = {{"[UNK]", 0}, {"ab", 1}, {".", 2}, {"!", 3}, {"a", 4}};
  json spec = wordpiece(vocab);
  spec["pre_tokenizer"] = {{"type", "Split"},
                           {"pattern", {{"Regex", "[^(\\s|[.!])]+"}}},
                           {"behavior", "Isolated"},
                           {"invert", false}};
  const auto nested = load_spec("nested_class", spec);
  CHECK(nested->encode("ab.ab") == Ids{1, 2, 1});
  CHECK(nested->encode("ab!ab") == Ids{1, 3, 1});
  spec["pre_tokenizer"]["pattern"]["Regex"] = "[a[^b]]";
  CHECK_THROWS_WITH(load_spec("nested_negated", spec),
                    Contains("tokenizer.json") && Contains("negated class inside a class"));
}

TEST_CASE("the default template: BOS before each text, or else EOS after it",
          "[tokenizer][components]") {
  // The bundled demo's SentencePiece model has a BOS (Llama's convention).
  const auto demo = ph::load_tokenizer(ph::test::source_path("models/demo/hf"));
  const Ids text = demo->encode("The computer");
  Ids expected{demo->bos_id()};
  expected.insert(expected.end(), text.begin(), text.end());
  CHECK(demo->encode_for_model("The computer").ids == expected);
  const ph::Encoding pair = demo->encode_pair("The", "computer");
  CHECK(pair.ids.front() == demo->bos_id());
  CHECK(pair.type_ids.back() == 1);
}
