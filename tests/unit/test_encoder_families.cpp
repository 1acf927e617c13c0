// The bert and roberta families: config.json into the encoder recipe (and what is
// refused, naming the field), the fixtures' weights into a Model (embeddings, post-norm
// layers, pooler, the base model's classification head).
#include <catch.hpp>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "models/common/error.h"
#include "models/config/model_config.h"
#include "models/engine/model.h"
#include "test_support.h"

using Catch::Matchers::Contains;
using nlohmann::json;
using namespace ph;

namespace {

std::string hf_model(const std::string& name) {
  return test::source_path("tests/fixtures/hf/models/" + name);
}

json config_of(const std::string& name) {
  std::ifstream in(hf_model(name) + "/config.json");
  return json::parse(in);
}

ModelConfig parse(const json& config, const std::string& name) {
  const std::string path = test::temp_dir("encoder_config_" + name) + "/config.json";
  std::ofstream(path) << config.dump(2);
  return parse_hf_config(path);
}

}  // namespace

TEST_CASE("encoder families: the fixtures' configs give the encoder recipe", "[families]") {
  const ModelConfig bert = parse_hf_config(hf_model("bert-cls-tiny") + "/config.json");
  CHECK(bert.arch == Arch::kBert);
  CHECK(bert.stacks == Stacks::kEncoder);
  CHECK(bert.task == TaskType::kSeqCls);
  CHECK(bert.post_norm);
  CHECK(bert.norm == NormKind::kLayer);
  CHECK(bert.positions == Positions::kLearned);
  CHECK(bert.activation == Activation::kGeluErf);
  CHECK_FALSE(bert.gated_mlp);
  CHECK(bert.classifier == ClassifierHead::kPooler);
  CHECK(bert.n_layers == 2);
  CHECK(bert.dim == 32);
  CHECK(bert.n_heads == 4);
  CHECK(bert.head_dim == 8);
  CHECK(bert.ffn_dim == 64);
  CHECK(bert.vocab_size == 100);
  CHECK(bert.max_positions == 40);
  CHECK(bert.position_offset == 0);
  CHECK(bert.type_vocab_size == 2);
  CHECK(bert.norm_eps == 1e-12f);
  CHECK(bert.num_labels() == 3);

  const ModelConfig roberta = parse_hf_config(hf_model("roberta-cls-tiny") + "/config.json");
  CHECK(roberta.arch == Arch::kRoberta);
  CHECK(roberta.classifier == ClassifierHead::kDenseTanh);
  CHECK(roberta.position_offset == 2);  // padding_idx 1 + 1
  CHECK(roberta.max_positions == 40);   // 42 rows, the first 2 before any text
  CHECK(roberta.type_vocab_size == 1);
  CHECK(roberta.norm_eps == 1e-5f);
  CHECK(roberta.num_labels() == 2);
}

TEST_CASE("encoder families: what the engine does not implement is refused, naming the field",
          "[families]") {
  json c = config_of("bert-cls-tiny");
  c["hidden_act"] = "gelu_fast";
  CHECK_THAT(test::error_of([&] { parse(c, "act"); }),
             Contains("config.json: field 'hidden_act' is 'gelu_fast'"));
  c["hidden_act"] = "relu";  // ACT2FN names the kernels implement are accepted
  CHECK(parse(c, "relu").activation == Activation::kRelu);
  c["hidden_act"] = "gelu_new";
  CHECK(parse(c, "gelu_new").activation == Activation::kGeluTanh);

  c = config_of("bert-cls-tiny");
  c["position_embedding_type"] = "relative_key";
  CHECK_THAT(test::error_of([&] { parse(c, "positions"); }),
             Contains("field 'position_embedding_type' is 'relative_key'; only 'absolute'"));

  c = config_of("bert-cls-tiny");
  c["is_decoder"] = true;
  CHECK_THAT(test::error_of([&] { parse(c, "decoder"); }), Contains("'is_decoder'"));

  c = config_of("bert-cls-tiny");
  c.erase("intermediate_size");
  CHECK_THAT(test::error_of([&] { parse(c, "missing"); }),
             Contains("missing field 'intermediate_size'"));

  c = config_of("roberta-cls-tiny");
  c["max_position_embeddings"] = 2;
  CHECK_THAT(test::error_of([&] { parse(c, "roberta_positions"); }),
             Contains("field 'max_position_embeddings' (2) leaves no position after "
                      "padding_idx + 1 = 2"));
  c = config_of("roberta-cls-tiny");
  c["pad_token_id"] = nullptr;
  CHECK_THAT(test::error_of([&] { parse(c, "roberta_pad"); }), Contains("'pad_token_id' is null"));

  c = config_of("bert-cls-tiny");
  c["num_labels"] = 4;  // id2label names 3
  CHECK_THAT(test::error_of([&] { parse(c, "labels"); }),
             Contains("field 'num_labels' is 4 but 'id2label' names 3 classes"));
}

TEST_CASE("encoder families: an encoder without a classification class is still SEQ_CLS",
          "[families]") {
  json c = config_of("roberta-cls-tiny");
  c["architectures"] = {"RobertaForMaskedLM"};  // roberta-large's own config
  const ModelConfig config = parse(c, "masked_lm");
  CHECK(config.task == TaskType::kSeqCls);
  CHECK(config.num_labels() == 2);  // transformers' default
}

TEST_CASE("encoder families: the fixtures' weights load", "[families]") {
  const Model bert = load_model(hf_model("bert-cls-tiny"));
  CHECK(bert.token_type_embedding);
  CHECK(bert.embed_norm.w);
  CHECK(bert.embed_norm.b);
  CHECK(bert.pooler.w);
  CHECK(bert.pooler.b);
  REQUIRE(bert.layers.size() == 2);
  CHECK(bert.layers[1].qkv.out == 96);
  CHECK(bert.layers[1].qkv.b);
  CHECK(bert.layers[1].mlp_in.out == 64);
  REQUIRE(bert.classifier.size() == 2);
  CHECK(bert.classifier.at("classifier.weight").shape(0) == 3);

  const Model roberta = load_model(hf_model("roberta-cls-tiny"));
  CHECK_FALSE(roberta.pooler.w);
  REQUIRE(roberta.classifier.size() == 4);
  CHECK(roberta.classifier.at("classifier.dense.weight").shape(0) == 32);
  CHECK(roberta.classifier.at("classifier.out_proj.bias").shape(0) == 2);
}

TEST_CASE("encoder families: a head or pooler the weights do not match is refused", "[families]") {
  namespace fs = std::filesystem;
  const std::string dir = test::temp_dir("encoder_head_mismatch");
  fs::copy_file(hf_model("bert-cls-tiny") + "/model.safetensors", dir + "/model.safetensors");
  json c = config_of("bert-cls-tiny");
  c["id2label"] = {{"0", "a"}, {"1", "b"}, {"2", "c"}, {"3", "d"}};  // the weights hold 3
  c.erase("label2id");
  std::ofstream(dir + "/config.json") << c.dump(2);
  CHECK_THAT(test::error_of([&] { load_model(dir); }),
             Contains("classifier.weight") && Contains("[4, 32]"));
}
