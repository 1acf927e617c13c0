// load_tokenizer(): which file of a folder it picks, and bad inputs — truncated or corrupt
// files must give a ph::Error that names the file and the problem, never a crash.
#include <catch.hpp>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>

#include <nlohmann/json.hpp>

#include "models/common/error.h"
#include "models/tokenizer/text_util.h"
#include "models/tokenizer/tokenizer.h"
#include "test_support.h"

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using Catch::Matchers::Contains;

std::string demo_path(const std::string& relative) {
  return ph::test::source_path("models/demo/" + relative);
}
std::string gpt2_json() {
  return ph::test::fixtures_dir() + "/tokenizers/gpt2/tokenizer.json";
}

std::string read(const std::string& path) {
  return ph::tok::read_file(path, "test input");
}

std::string write(const std::string& path, const std::string& content) {
  std::ofstream(path, std::ios::binary) << content;
  return path;
}

// The demo tokenizer.bin with the int32 / float at byte `offset` replaced.
template <typename T>
std::string patched_bin(const std::string& dir, size_t offset, T value) {
  std::string data = read(demo_path("tokenizer.bin"));
  std::memcpy(&data[offset], &value, sizeof value);
  return write(dir + "/tokenizer.bin", data);
}

// The gpt2 fixture with `edit` applied.
template <typename F>
std::string edited_json(const std::string& name, F edit) {
  json spec = json::parse(read(gpt2_json()));
  edit(spec);
  return write(ph::test::temp_dir(name) + "/tokenizer.json", spec.dump());
}

// True if decoding keeps a double space: llama2.c's and tokenizer.json do, while the demo
// SentencePiece model removes it. Tells which format a folder was loaded from.
bool keeps_double_space(const ph::Tokenizer& tokenizer) {
  return tokenizer.decode(tokenizer.encode("a  b")) == "a  b";
}

}  // namespace

TEST_CASE("load_tokenizer picks the file of a model folder", "[tokenizer][load]") {
  const auto bin = ph::load_tokenizer(demo_path(""));  // fortune-llama.bin + tokenizer.bin
  CHECK(bin->vocab_size() == 1024);
  CHECK(keeps_double_space(*bin));
  const auto model = ph::load_tokenizer(demo_path("hf"));
  CHECK(model->vocab_size() == 1024);
  CHECK_FALSE(keeps_double_space(*model));

  // tokenizer.json first, then tokenizer.model, then tokenizer.bin.
  const std::string dir = ph::test::temp_dir("load_order");
  fs::copy_file(demo_path("tokenizer.bin"), dir + "/tokenizer.bin");
  fs::copy_file(demo_path("hf/tokenizer.model"), dir + "/tokenizer.model");
  CHECK_FALSE(keeps_double_space(*ph::load_tokenizer(dir)));
  fs::copy_file(gpt2_json(), dir + "/tokenizer.json");
  CHECK(ph::load_tokenizer(dir)->vocab_size() == 50257);
}

TEST_CASE("load_tokenizer: missing files and folders", "[tokenizer][load]") {
  const std::string missing = ph::test::temp_dir("load_missing") + "/nothing/tokenizer.json";
  CHECK_THROWS_WITH(ph::load_tokenizer(missing), Contains(missing) && Contains("no such"));
  const std::string empty = ph::test::temp_dir("load_empty_folder");
  CHECK_THROWS_WITH(ph::load_tokenizer(empty),
                    Contains(empty) && Contains("tokenizer.json") && Contains("tokenizer.bin"));
  const std::string other = write(empty + "/vocab.txt", "a\nb\n");
  CHECK_THROWS_WITH(ph::load_tokenizer(other),
                    Contains(other) && Contains("unknown tokenizer format"));
}

TEST_CASE("truncated llama2.c tokenizer.bin", "[tokenizer][load]") {
  const std::string dir = ph::test::temp_dir("bin_truncated");
  const std::string data = read(demo_path("tokenizer.bin"));
  const std::string path = dir + "/tokenizer.bin";

  write(path, "");
  CHECK_THROWS_WITH(ph::load_tokenizer(path), Contains(path) && Contains("too short"));
  write(path, data.substr(0, 4 + 5));  // inside piece 0's score and length
  CHECK_THROWS_WITH(ph::load_tokenizer(path),
                    Contains(path) && Contains("truncated") && Contains("piece 0"));
  write(path, data.substr(0, 4 + 8 + 2));  // inside piece 0's bytes
  CHECK_THROWS_WITH(ph::load_tokenizer(path),
                    Contains(path) && Contains("truncated") && Contains("piece 0"));
  write(path, data.substr(0, data.size() - 1));
  CHECK_THROWS_WITH(ph::load_tokenizer(path),
                    Contains(path) && Contains("truncated") && Contains("piece 1023"));

  // Cut anywhere: an error naming the file, or (cut between two pieces, which the format
  // cannot tell) fewer pieces; never a crash.
  int errors = 0, shorter = 0;
  for (size_t cut = 0; cut < data.size(); cut += 41) {
    write(path, data.substr(0, cut));
    try {
      const auto tokenizer = ph::load_tokenizer(path);
      CHECK(tokenizer->vocab_size() < 1024);
      CHECK(tokenizer->decode(tokenizer->encode("Hello there")) == "Hello there");
      ++shorter;
    } catch (const ph::Error& e) {
      CHECK_THAT(e.what(), Contains(path));
      ++errors;
    }
  }
  CHECK(errors > 0);
  CHECK(shorter > 0);
}

TEST_CASE("corrupt llama2.c tokenizer.bin", "[tokenizer][load]") {
  const std::string dir = ph::test::temp_dir("bin_corrupt");
  const size_t first_length = 4 + 4;  // piece 0: float score at 4, int32 length at 8
  std::string path = patched_bin(dir, 0, int32_t{0});
  CHECK_THROWS_WITH(ph::load_tokenizer(path), Contains(path) && Contains("max_token_length"));
  path = patched_bin(dir, first_length, int32_t{-5});
  CHECK_THROWS_WITH(ph::load_tokenizer(path), Contains("piece 0") && Contains("length -5"));
  path = patched_bin(dir, first_length, std::numeric_limits<int32_t>::max());
  CHECK_THROWS_WITH(ph::load_tokenizer(path), Contains("piece 0") && Contains("length"));
  path = patched_bin(dir, 4, std::numeric_limits<float>::quiet_NaN());
  CHECK_THROWS_WITH(ph::load_tokenizer(path), Contains("piece 0") && Contains("finite"));

  // Whole pieces but too few for the byte fallback: <unk>, <s>, </s> and 10 byte pieces.
  const std::string data = read(demo_path("tokenizer.bin"));
  size_t end = 4;
  for (int piece = 0; piece < 13; ++piece) {
    int32_t length;
    std::memcpy(&length, &data[end + 4], sizeof length);
    end += 8 + length;
  }
  path = write(dir + "/tokenizer.bin", data.substr(0, end));
  CHECK_THROWS_WITH(ph::load_tokenizer(path), Contains(path) && Contains("13 pieces"));
}

TEST_CASE("corrupt tokenizer.json", "[tokenizer][load]") {
  const std::string truncated =
      write(ph::test::temp_dir("json_bad") + "/tokenizer.json", read(gpt2_json()).substr(0, 5000));
  CHECK_THROWS_WITH(ph::load_tokenizer(truncated),
                    Contains(truncated) && Contains("not valid JSON"));

  // Every component type is refused by name with the file and the field, never skipped.
  std::string path =
      edited_json("json_wordlevel", [](json& s) { s["model"]["type"] = "WordLevel"; });
  CHECK_THROWS_WITH(ph::load_tokenizer(path),
                    Contains(path) && Contains("unsupported tokenizer model type 'WordLevel'") &&
                        Contains("model.type"));
  path = edited_json("json_unigram", [](json& s) { s["model"] = {{"type", "Unigram"}}; });
  CHECK_THROWS_WITH(ph::load_tokenizer(path), Contains(path) && Contains("vocab"));
  path = edited_json("json_no_model", [](json& s) { s.erase("model"); });
  CHECK_THROWS_WITH(ph::load_tokenizer(path), Contains(path) && Contains("\"model\""));

  path = edited_json("json_scripts", [](json& s) {
    s["pre_tokenizer"] = {{"type", "UnicodeScripts"}};
  });
  CHECK_THROWS_WITH(ph::load_tokenizer(path),
                    Contains(path) && Contains("unsupported pre_tokenizer type 'UnicodeScripts'"));
  path = edited_json("json_nmt_normalizer", [](json& s) {
    s["normalizer"] = {{"type", "Sequence"}, {"normalizers", {{{"type", "Nmt"}}}}};
  });
  CHECK_THROWS_WITH(ph::load_tokenizer(path),
                    Contains(path) && Contains("unsupported normalizer type 'Nmt'"));
  path = edited_json("json_ctc_decoder", [](json& s) { s["decoder"] = {{"type", "CTC"}}; });
  CHECK_THROWS_WITH(ph::load_tokenizer(path), Contains("unsupported decoder type 'CTC'"));
  path = edited_json("json_post_processor", [](json& s) {
    s["post_processor"] = {{"type", "Sequence"},
                           {"processors", {{{"type", "ByteLevel"}}, {{"type", "Fancy"}}}}};
  });
  CHECK_THROWS_WITH(ph::load_tokenizer(path),
                    Contains(path) && Contains("post_processor.processors[1]") &&
                        Contains("unsupported post_processor type 'Fancy'"));

  path = edited_json("json_bad_merge", [](json& s) { s["model"]["merges"][0] = "Ġ nosuchtoken"; });
  CHECK_THROWS_WITH(ph::load_tokenizer(path),
                    Contains(path) && Contains("merge 0") && Contains("'nosuchtoken'"));
  path = edited_json("json_bad_merge_form", [](json& s) { s["model"]["merges"][3] = "a b c"; });
  CHECK_THROWS_WITH(ph::load_tokenizer(path), Contains("merge 3"));
  path = edited_json("json_bad_id", [](json& s) { s["model"]["vocab"]["!"] = "zero"; });
  CHECK_THROWS_WITH(ph::load_tokenizer(path), Contains(path) && Contains("invalid id"));
  path = edited_json("json_huge_id", [](json& s) { s["model"]["vocab"]["!"] = 2000000000; });
  CHECK_THROWS_WITH(ph::load_tokenizer(path), Contains(path) && Contains("2000000000"));
  path = edited_json("json_bad_vocab", [](json& s) { s["model"]["vocab"] = json::array(); });
  CHECK_THROWS_WITH(ph::load_tokenizer(path), Contains(path) && Contains("vocab"));
  path = edited_json("json_no_merges", [](json& s) { s["model"].erase("merges"); });
  CHECK_THROWS_WITH(ph::load_tokenizer(path), Contains(path) && Contains("merges"));
  path = edited_json("json_bad_regex", [](json& s) {
    s["pre_tokenizer"] = {
        {"type", "Split"}, {"pattern", {{"Regex", "(unclosed"}}}, {"behavior", "Isolated"}};
  });
  CHECK_THROWS_WITH(ph::load_tokenizer(path),
                    Contains(path) && Contains("invalid regular expression"));
}

TEST_CASE("corrupt SentencePiece tokenizer.model", "[tokenizer][load]") {
  const std::string dir = ph::test::temp_dir("model_corrupt");
  const std::string garbage = write(dir + "/tokenizer.model", "this is not a protobuf");
  CHECK_THROWS_WITH(ph::load_tokenizer(garbage), Contains(garbage));
  const std::string truncated =
      write(dir + "/cut.model", read(demo_path("hf/tokenizer.model")).substr(0, 3000));
  CHECK_THROWS_WITH(ph::load_tokenizer(truncated), Contains(truncated));
}

TEST_CASE("a merge's missing token is named in one order: left part, right part, result",
          "[tokenizer][load]") {
  // The same file gives the same message with every compiler and sanitizer (the order in
  // which a compiler evaluates function arguments must not decide which token is named).
  std::string path = edited_json(
      "merge_parts_missing", [](json& s) { s["model"]["merges"][0] = "nosuchleft nosuchright"; });
  CHECK_THROWS_WITH(ph::load_tokenizer(path),
                    Contains(path) && Contains("merge 0 has a left part 'nosuchleft'"));
  path = edited_json("merge_right_missing",
                     [](json& s) { s["model"]["merges"][0] = "Ġ nosuchright"; });
  CHECK_THROWS_WITH(ph::load_tokenizer(path), Contains("merge 0 has a right part 'nosuchright'"));
  // GPT-2's merge 0 is "Ġ t": without the token "Ġt" only its result is missing.
  path = edited_json("merge_result_missing", [](json& s) { s["model"]["vocab"].erase("Ġt"); });
  CHECK_THROWS_WITH(ph::load_tokenizer(path), Contains("merge 0 has a result 'Ġt'"));
}
