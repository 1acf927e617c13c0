// The demo model's tokenizer in its three spellings — SentencePiece's tokenizer.model
// (libsentencepiece), llama2.c's tokenizer.bin, and a Hugging Face tokenizer.json
// converted from the .model as transformers' LlamaConverter does — on every text of the
// demo tasks' test sets.
//
// The three agree exactly except where the .model's normalizer changes the text: it
// removes extra whitespace (leading and trailing spaces, runs of spaces), which
// llama2.c's algorithm and Llama-style tokenizer.json files do not do. For those texts
// this suite checks that the difference is that normalization and nothing else.
#include <catch.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include <sentencepiece_processor.h>
#include <nlohmann/json.hpp>

#include "models/tokenizer/tokenizer.h"
#include "test_support.h"

namespace {

using json = nlohmann::json;
using Ids = std::vector<int32_t>;

const std::string kSpace = "\xE2\x96\x81";  // "▁"

std::string demo_path(const std::string& relative) {
  return ph::test::source_path("models/demo/" + relative);
}

// The "text", "input" and "output" fields of every tasks/*/test.jsonl, plus a few texts
// that reach the byte fallback, digits and control characters.
const std::vector<std::string>& corpus() {
  static const std::vector<std::string> texts = [] {
    std::vector<std::string> paths;
    for (const auto& entry : std::filesystem::directory_iterator(demo_path("tasks"))) {
      const auto file = entry.path() / "test.jsonl";
      if (std::filesystem::exists(file)) paths.push_back(file.string());
    }
    std::sort(paths.begin(), paths.end());
    std::vector<std::string> out;
    for (const auto& path : paths) {
      std::ifstream in(path);
      for (std::string line; std::getline(in, line);) {
        if (line.empty()) continue;
        const json record = json::parse(line);
        for (const char* field : {"text", "input", "output"}) {
          if (record.contains(field)) out.push_back(record[field].get<std::string>());
        }
      }
    }
    for (const char* extra :
         {"", "x", "Pi is 3.14159, not 22/7.", "Café naïve 日本語 👍🏽",
          "tab\there\r\nCRLF", "<0x41> is not a byte token", "a\n  b",
          "spaces before  \nnewline  \n", "\n", " "}) {
      out.push_back(extra);
    }
    return out;
  }();
  return texts;
}

// What the demo .model's normalizer (SentencePiece's remove_extra_whitespaces) does to a
// text: no leading or trailing spaces, runs of spaces made one.
std::string remove_extra_spaces(const std::string& text) {
  std::string out;
  for (const char c : text) {
    if (c == ' ' && (out.empty() || out.back() == ' ')) continue;
    out += c;
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

// A Hugging Face tokenizer.json of the .model, built as transformers' LlamaConverter
// builds it: vocabulary and scores from the model; a merge for every pair of pieces
// whose concatenation is a piece, ranked by that piece's score (SentencePieceExtractor);
// byte fallback; control pieces as special added tokens.
json tokenizer_json_from_sentencepiece(const std::string& model_path, const json& normalizer,
                                       const json& pre_tokenizer) {
  sentencepiece::SentencePieceProcessor sp;
  const auto status = sp.Load(model_path);
  REQUIRE(status.ok());
  json vocab = json::object();
  std::vector<std::string> pieces;
  for (int id = 0; id < sp.GetPieceSize(); ++id) {
    pieces.push_back(sp.IdToPiece(id));
    vocab[pieces.back()] = id;
  }
  struct Merge {
    int left, right;
    float score;
  };
  std::vector<Merge> merges;
  for (int id = 0; id < sp.GetPieceSize(); ++id) {
    const std::string& piece = pieces[id];
    std::vector<Merge> local;
    // Every split at a character boundary (UTF-8 continuation bytes are not boundaries).
    for (size_t cut = 1; cut < piece.size(); ++cut) {
      if ((static_cast<unsigned char>(piece[cut]) & 0xC0) == 0x80) continue;
      const std::string left = piece.substr(0, cut), right = piece.substr(cut);
      if (vocab.contains(left) && vocab.contains(right)) {
        local.push_back({vocab[left].get<int>(), vocab[right].get<int>(), sp.GetScore(id)});
      }
    }
    std::sort(local.begin(), local.end(), [](const Merge& a, const Merge& b) {
      return a.left != b.left ? a.left < b.left : a.right < b.right;
    });
    merges.insert(merges.end(), local.begin(), local.end());
  }
  std::stable_sort(merges.begin(), merges.end(),
                   [](const Merge& a, const Merge& b) { return a.score > b.score; });
  json merge_list = json::array();
  for (const Merge& m : merges) merge_list.push_back({pieces[m.left], pieces[m.right]});

  json added = json::array();
  for (int id = 0; id < sp.GetPieceSize(); ++id) {
    if (sp.IsControl(id) || sp.IsUnknown(id)) {
      added.push_back({{"id", id},
                       {"content", pieces[id]},
                       {"single_word", false},
                       {"lstrip", false},
                       {"rstrip", false},
                       {"normalized", false},
                       {"special", true}});
    }
  }
  return {
      {"version", "1.0"},
      {"added_tokens", added},
      {"normalizer", normalizer},
      {"pre_tokenizer", pre_tokenizer},
      {"decoder",
       {{"type", "Sequence"},
        {"decoders",
         {{{"type", "Replace"}, {"pattern", {{"String", kSpace}}}, {"content", " "}},
          {{"type", "ByteFallback"}},
          {{"type", "Fuse"}},
          {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}}}}},
      {"model",
       {{"type", "BPE"},
        {"dropout", nullptr},
        {"unk_token", "<unk>"},
        {"continuing_subword_prefix", nullptr},
        {"end_of_word_suffix", nullptr},
        {"fuse_unk", true},
        {"byte_fallback", true},
        {"vocab", vocab},
        {"merges", merge_list}}},
  };
}

// LlamaConverter's normalizer: "▁" before the text, every space a "▁".
json llama_normalizer() {
  return {{"type", "Sequence"},
          {"normalizers",
           {{{"type", "Prepend"}, {"prepend", kSpace}},
            {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", kSpace}}}}};
}

// The same, after removing extra spaces as the demo .model's normalizer does.
json whitespace_removing_normalizer() {
  json steps = {// \A and \z, the ends of the text (^ and $ would be the ends of each line).
                {{"type", "Replace"}, {"pattern", {{"Regex", R"(\A +| +\z)"}}}, {"content", ""}},
                {{"type", "Replace"}, {"pattern", {{"Regex", " {2,}"}}}, {"content", " "}}};
  const json llama = llama_normalizer();
  for (const auto& step : llama["normalizers"]) steps.push_back(step);
  return {{"type", "Sequence"}, {"normalizers", steps}};
}

std::unique_ptr<ph::Tokenizer> load_converted(const std::string& name, const json& normalizer,
                                              const json& pre_tokenizer = nullptr) {
  const std::string path = ph::test::temp_dir(name) + "/tokenizer.json";
  std::ofstream(path) << tokenizer_json_from_sentencepiece(demo_path("hf/tokenizer.model"),
                                                           normalizer, pre_tokenizer)
                             .dump();
  return ph::load_tokenizer(path);
}

void check_special_ids(const ph::Tokenizer& tokenizer) {
  CHECK(tokenizer.vocab_size() == 1024);
  CHECK(tokenizer.bos_id() == 1);
  CHECK(tokenizer.eos_id() == 2);
}

}  // namespace

TEST_CASE("demo corpus is there", "[tokenizer][demo]") {
  // 9 task files: 339 topic examples (input + output) and 660 text examples.
  CHECK(corpus().size() >= 2 * 339 + 660);
}

TEST_CASE("demo: tokenizer.bin (llama2.c) matches tokenizer.model (SentencePiece)",
          "[tokenizer][demo]") {
  const auto sp = ph::load_tokenizer(demo_path("hf/tokenizer.model"));
  const auto llama2c = ph::load_tokenizer(demo_path("tokenizer.bin"));
  check_special_ids(*sp);
  check_special_ids(*llama2c);

  int same = 0, normalized = 0;
  for (const std::string& text : corpus()) {
    INFO("text: [" << text << "]");
    const Ids expected = sp->encode(text);
    const Ids ids = llama2c->encode(text);
    CHECK(llama2c->decode(ids) == text);
    CHECK(sp->decode(expected) == remove_extra_spaces(text));
    if (remove_extra_spaces(text) == text) {
      CHECK(ids == expected);
      ++same;
    } else {
      // Not the same ids: only because SentencePiece removed the extra spaces first.
      CHECK(ids != expected);
      CHECK(llama2c->encode(remove_extra_spaces(text)) == expected);
      ++normalized;
    }
  }
  std::cout << "demo tokenizer.bin vs tokenizer.model: " << same << " texts the same ids, "
            << normalized << " differ only by SentencePiece's removal of extra spaces\n";
  CHECK(same > 0);
  CHECK(same + normalized == static_cast<int>(corpus().size()));
}

TEST_CASE("demo: BOS and EOS decode to no text", "[tokenizer][demo]") {
  for (const char* file : {"hf/tokenizer.model", "tokenizer.bin"}) {
    const auto tokenizer = ph::load_tokenizer(demo_path(file));
    Ids ids = tokenizer->encode("Hello, world.");
    ids.insert(ids.begin(), tokenizer->bos_id());
    ids.push_back(tokenizer->eos_id());
    CHECK(tokenizer->decode(ids) == "Hello, world.");
  }
}

TEST_CASE("demo: Llama-style tokenizer.json converted from tokenizer.model", "[tokenizer][demo]") {
  const auto sp = ph::load_tokenizer(demo_path("hf/tokenizer.model"));
  const auto llama2c = ph::load_tokenizer(demo_path("tokenizer.bin"));
  const auto hf = load_converted("demo_llama_json", llama_normalizer());
  check_special_ids(*hf);
  for (const std::string& text : corpus()) {
    INFO("text: [" << text << "]");
    const Ids ids = hf->encode(text);
    CHECK(hf->decode(ids) == text);
    // No whitespace removal here either: the same ids as llama2.c's, on every text...
    CHECK(ids == llama2c->encode(text));
    // ...and as SentencePiece's once the extra spaces are gone.
    CHECK(hf->encode(remove_extra_spaces(text)) == sp->encode(text));
  }
}

TEST_CASE("demo: non-legacy Llama tokenizer.json (Metaspace pre-tokenizer, no normalizer)",
          "[tokenizer][demo]") {
  // transformers' LlamaConverter with legacy=False: "▁" is prepended only when the text
  // does not already start with one, so " x" encodes as llama2.c encodes "x".
  const auto llama2c = ph::load_tokenizer(demo_path("tokenizer.bin"));
  const json metaspace = {{"type", "Metaspace"},
                          {"replacement", kSpace},
                          {"prepend_scheme", "first"},
                          {"split", false}};
  const auto hf = load_converted("demo_metaspace_json", nullptr, metaspace);
  int leading_space = 0;
  for (const std::string& text : corpus()) {
    INFO("text: [" << text << "]");
    const Ids ids = hf->encode(text);
    if (text == " ") {
      CHECK(ids.size() == 1);  // "▁", which llama2.c gives for no text
    } else if (!text.empty() && text[0] == ' ') {
      CHECK(ids == llama2c->encode(text.substr(1)));
      ++leading_space;
    } else {
      CHECK(ids == llama2c->encode(text));
      CHECK(hf->decode(ids) == text);
    }
  }
  CHECK(leading_space > 0);
}

TEST_CASE("demo: tokenizer.json with the .model's whitespace removal matches SentencePiece",
          "[tokenizer][demo]") {
  const auto sp = ph::load_tokenizer(demo_path("hf/tokenizer.model"));
  const auto hf = load_converted("demo_spm_json", whitespace_removing_normalizer());
  for (const std::string& text : corpus()) {
    INFO("text: [" << text << "]");
    const Ids ids = hf->encode(text);
    CHECK(ids == sp->encode(text));
    CHECK(hf->decode(ids) == sp->decode(ids));
  }
}

TEST_CASE("demo: the text of a special token", "[tokenizer][demo]") {
  const std::string text = "<s>Hi</s>";
  // SentencePiece and llama2.c never read control pieces out of a text...
  const auto sp = ph::load_tokenizer(demo_path("hf/tokenizer.model"));
  const auto llama2c = ph::load_tokenizer(demo_path("tokenizer.bin"));
  const Ids ids = sp->encode(text);
  CHECK(std::find(ids.begin(), ids.end(), 1) == ids.end());
  CHECK(llama2c->encode(text) == ids);
  CHECK(llama2c->decode(ids) == text);
  // ...while a tokenizer.json matches its added tokens in the text (Hugging Face's
  // default), so there "<s>" is BOS, which decodes to no text.
  const auto hf = load_converted("demo_special_text", llama_normalizer());
  const Ids hf_ids = hf->encode(text);
  REQUIRE(hf_ids.size() >= 3);
  CHECK(hf_ids.front() == 1);
  CHECK(hf_ids.back() == 2);
  CHECK(hf->decode(hf_ids) == "Hi");
}
