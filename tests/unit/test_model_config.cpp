// config.json parsing (llama family and gpt2) and the config invariants.
#include <catch.hpp>

#include <fstream>

#include <nlohmann/json.hpp>

#include "models/common/error.h"
#include "models/config/model_config.h"
#include "test_support.h"

using Catch::Matchers::Contains;
using nlohmann::json;

namespace {

json read_json(const std::string& path) {
  std::ifstream in(path);
  return json::parse(in);
}

json llama_tiny() {
  return read_json(ph::test::fixtures_dir() + "/models/llama-tiny/config.json");
}
json gpt2_tiny() {
  return read_json(ph::test::fixtures_dir() + "/models/gpt2-tiny/config.json");
}

// Writes `config` as a config.json of its own temporary folder; returns the path.
std::string write_config(const json& config, const std::string& name) {
  const std::string path = ph::test::temp_dir("model_config_" + name) + "/config.json";
  std::ofstream(path) << config.dump(2);
  return path;
}

ph::ModelConfig parse(const json& config, const std::string& name = "variant") {
  return ph::parse_hf_config(write_config(config, name));
}

}  // namespace

TEST_CASE("config: the fixture and demo configs parse right", "[config]") {
  SECTION("llama-tiny") {
    const ph::ModelConfig c =
        ph::parse_hf_config(ph::test::fixtures_dir() + "/models/llama-tiny/config.json");
    CHECK(c.arch == ph::Arch::kLlama);
    CHECK(c.n_layers == 2);
    CHECK(c.dim == 64);
    CHECK(c.n_heads == 4);
    CHECK(c.n_kv_heads == 2);
    CHECK(c.head_dim == 16);
    CHECK(c.ffn_dim == 172);
    CHECK(c.vocab_size == 97);
    CHECK(c.max_positions == 128);
    CHECK(c.norm_eps == 1e-5f);
    CHECK(c.rope_theta == 10000.0f);
    CHECK_FALSE(c.tied_head);
    CHECK_FALSE(c.qkv_bias);
    CHECK(c.bos_id == 1);
    CHECK(c.eos_id == 2);
    CHECK(c.q_dim() == 64);
    CHECK(c.kv_dim() == 32);
    CHECK(c.qkv_dim() == 128);
  }
  SECTION("gpt2-tiny") {
    const ph::ModelConfig c =
        ph::parse_hf_config(ph::test::fixtures_dir() + "/models/gpt2-tiny/config.json");
    CHECK(c.arch == ph::Arch::kGpt2);
    CHECK(c.n_layers == 2);
    CHECK(c.dim == 64);
    CHECK(c.n_heads == 4);
    CHECK(c.n_kv_heads == 4);
    CHECK(c.head_dim == 16);
    CHECK(c.ffn_dim == 256);  // n_inner absent: 4 * n_embd
    CHECK(c.vocab_size == 97);
    CHECK(c.max_positions == 128);
    CHECK(c.norm_eps == 1e-5f);
    CHECK(c.tied_head);
    CHECK(c.bos_id == 0);
    CHECK(c.eos_id == 0);
  }
  SECTION("demo") {
    const ph::ModelConfig c =
        ph::parse_hf_config(ph::test::source_path("models/demo/hf/config.json"));
    CHECK(c.arch == ph::Arch::kLlama);
    CHECK(c.n_layers == 5);
    CHECK(c.dim == 128);
    CHECK(c.n_heads == 4);
    CHECK(c.n_kv_heads == 2);
    CHECK(c.head_dim == 32);
    CHECK(c.ffn_dim == 352);
    CHECK(c.vocab_size == 1024);
    CHECK(c.max_positions == 256);
    CHECK(c.tied_head);
  }
  CHECK(std::string(ph::arch_name(ph::Arch::kLlama)) == "llama");
  CHECK(std::string(ph::arch_name(ph::Arch::kGpt2)) == "gpt2");
}

TEST_CASE("config: llama-family defaults and variants", "[config]") {
  json j = llama_tiny();
  j.erase("num_key_value_heads");
  j.erase("rope_theta");
  j.erase("rms_norm_eps");
  j.erase("tie_word_embeddings");
  j["eos_token_id"] = {2, 5};
  j["bos_token_id"] = nullptr;
  ph::ModelConfig c = parse(j);
  CHECK(c.n_kv_heads == 4);  // defaults to the query heads
  CHECK(c.rope_theta == 10000.0f);
  CHECK(c.norm_eps == 1e-6f);  // transformers' LlamaConfig default
  CHECK_FALSE(c.tied_head);
  CHECK(c.eos_id == 2);  // a list: its first
  CHECK(c.bos_id == -1);

  j = llama_tiny();
  j["head_dim"] = 32;  // decoupled from hidden / heads
  c = parse(j);
  CHECK(c.head_dim == 32);
  CHECK(c.q_dim() == 128);
  CHECK(c.qkv_dim() == 256);
  j["head_dim"] = nullptr;
  CHECK(parse(j).head_dim == 16);

  j = llama_tiny();
  j["attention_bias"] = true;
  CHECK(parse(j).qkv_bias);
  j["model_type"] = "qwen2";
  j.erase("attention_bias");
  CHECK(parse(j).qkv_bias);
  j["model_type"] = "mistral";
  j["sliding_window"] = 64;
  c = parse(j);
  CHECK_FALSE(c.qkv_bias);
  CHECK(c.max_positions == 64);  // attention past the window would differ: capped
  j["sliding_window"] = nullptr;
  CHECK(parse(j).max_positions == 128);

  j = gpt2_tiny();
  j["n_inner"] = 100;
  CHECK(parse(j).ffn_dim == 100);
  j["n_inner"] = nullptr;
  CHECK(parse(j).ffn_dim == 256);
  j.erase("activation_function");
  CHECK(parse(j).arch == ph::Arch::kGpt2);
}

TEST_CASE("config: errors name the file and the field", "[config]") {
  const json llama = llama_tiny();
  const json gpt2 = gpt2_tiny();
  auto rejects = [](json j, const std::string& what) {
    const std::string path = write_config(j, "error");
    INFO(j.dump());
    REQUIRE_THROWS_AS(ph::parse_hf_config(path), ph::Error);
    REQUIRE_THROWS_WITH(ph::parse_hf_config(path), Contains(path) && Contains(what));
  };
  // `base` with one field set to `value` must be rejected with `what`.
  auto rejects_field = [&](const json& base, const std::string& field, const json& value,
                           const std::string& what) {
    json j = base;
    j[field] = value;
    rejects(j, what);
  };

  SECTION("missing fields") {
    for (const char* field :
         {"hidden_size", "intermediate_size", "num_attention_heads", "num_hidden_layers",
          "vocab_size", "max_position_embeddings", "model_type"}) {
      json j = llama;
      j.erase(field);
      rejects(j, std::string("missing field '") + field + "'");
    }
    for (const char* field : {"n_layer", "n_embd", "n_head", "n_positions", "vocab_size"}) {
      json j = gpt2;
      j.erase(field);
      rejects(j, std::string("missing field '") + field + "'");
    }
  }
  SECTION("wrong JSON types") {
    rejects_field(llama, "hidden_size", "64",
                  "field 'hidden_size' must be an integer, found string");
    rejects_field(llama, "num_hidden_layers", 2.5, "field 'num_hidden_layers' must be an integer");
    rejects_field(llama, "tie_word_embeddings", "yes",
                  "field 'tie_word_embeddings' must be true or false");
    rejects_field(llama, "rms_norm_eps", "small", "field 'rms_norm_eps' must be a number");
    rejects_field(llama, "eos_token_id", "</s>", "field 'eos_token_id' must be an integer");
    rejects_field(llama, "model_type", 3, "field 'model_type' must be a string");
    rejects_field(llama, "vocab_size", 1e12, "field 'vocab_size' must be an integer");
    rejects_field(llama, "vocab_size", 10000000000LL, "field 'vocab_size' is out of range");
  }
  SECTION("non-positive sizes") {
    rejects_field(llama, "hidden_size", 0, "field 'hidden_size' must be positive");
    rejects_field(llama, "num_key_value_heads", -2, "field 'num_key_value_heads' must be positive");
    rejects_field(gpt2, "n_layer", 0, "field 'n_layer' must be positive");
    rejects_field(llama, "rms_norm_eps", 0, "field 'rms_norm_eps' must be a positive number");
  }
  SECTION("heads that do not divide") {
    rejects_field(llama, "num_attention_heads", 3,
                  "'hidden_size' (64) is not divisible by 'num_attention_heads' (3)");
    rejects_field(llama, "num_key_value_heads", 3,
                  "'num_attention_heads' (4) is not divisible by 'num_key_value_heads' (3)");
    rejects_field(gpt2, "n_head", 5, "'n_embd' (64) is not divisible by 'n_head' (5)");
  }
  SECTION("unknown model_type lists the supported ones") {
    rejects_field(llama, "model_type", "mamba",
                  "'model_type' is 'mamba'; supported: llama, mistral, qwen2, gpt2");
  }
  SECTION("features the kernels do not implement") {
    rejects_field(gpt2, "activation_function", "relu", "'activation_function' is 'relu'");
    rejects_field(llama, "hidden_act", "gelu", "'hidden_act' is 'gelu'");
    rejects_field(llama, "rope_scaling", json{{"type", "linear"}, {"factor", 2.0}},
                  "'rope_scaling'");
  }
  SECTION("token ids outside the vocabulary") {
    rejects_field(llama, "eos_token_id", 97, "eos_id (97) is outside the vocabulary");
  }
  SECTION("unreadable files") {
    const std::string dir = ph::test::temp_dir("model_config_unreadable");
    const std::string missing = dir + "/config.json";
    REQUIRE_THROWS_WITH(ph::parse_hf_config(missing), Contains(missing) && Contains("cannot open"));
    std::ofstream(missing) << "{\"model_type\": ";
    REQUIRE_THROWS_WITH(ph::parse_hf_config(missing),
                        Contains(missing) && Contains("not valid JSON"));
    std::ofstream(missing) << "[1]";
    REQUIRE_THROWS_WITH(ph::parse_hf_config(missing), Contains(missing) && Contains("JSON object"));
  }
}

TEST_CASE("config: validate_config checks the kernels' invariants", "[config]") {
  ph::ModelConfig c =
      ph::parse_hf_config(ph::test::fixtures_dir() + "/models/llama-tiny/config.json");
  REQUIRE_NOTHROW(ph::validate_config(c, "src"));

  ph::ModelConfig bad = c;
  bad.n_kv_heads = 3;
  REQUIRE_THROWS_WITH(
      ph::validate_config(bad, "src.bin"),
      Contains("src.bin") && Contains("n_heads (4) is not divisible by n_kv_heads (3)"));
  bad = c;
  bad.n_layers = 0;
  REQUIRE_THROWS_WITH(ph::validate_config(bad, "src.bin"),
                      Contains("src.bin") && Contains("n_layers must be positive"));
  bad = c;
  bad.head_dim = 15;
  REQUIRE_THROWS_WITH(ph::validate_config(bad, "src.bin"), Contains("head_dim (15) must be even"));
  bad = c;
  bad.bos_id = -5;
  REQUIRE_THROWS_WITH(ph::validate_config(bad, "src.bin"), Contains("bos_id (-5)"));
  bad = c;
  ph::set_family(bad, ph::Arch::kGpt2);  // gpt2 has no grouped-query attention
  REQUIRE_THROWS_WITH(ph::validate_config(bad, "src.bin"), Contains("gpt2 needs"));
}
