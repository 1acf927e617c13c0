// BERT, and what RoBERTa shares with it (bert.h): an encoder of post-norm layers
// (x -> attention -> + x -> LayerNorm -> MLP -> + h -> LayerNorm) with biases everywhere,
// learned absolute and token-type embeddings summed and layer-normed, GELU, and for
// classification the pooler tanh(dense(h[0])) before `classifier`.
#include "models/families/bert.h"

#include <string>

#include "models/common/error.h"
#include "models/engine/encoder_head.h"

namespace ph {

namespace {

// transformers' ACT2FN names of the activations the kernels implement.
Activation parse_activation(const ConfigReader& r) {
  const std::string act = r.optional_string("hidden_act", "gelu");
  if (act == "gelu") return Activation::kGeluErf;
  if (act == "gelu_new" || act == "gelu_pytorch_tanh") return Activation::kGeluTanh;
  if (act == "relu") return Activation::kRelu;
  if (act == "silu" || act == "swish") return Activation::kSilu;
  throw Error(r.path() + ": field 'hidden_act' is '" + act +
              "'; supported: gelu, gelu_new, gelu_pytorch_tanh, relu, silu, swish");
}

}  // namespace

ModelConfig parse_bert_encoder(const ConfigReader& r, Arch arch) {
  ModelConfig c;
  set_family(c, arch);  // the recipe: stacks, norms, positions, biases, head
  c.activation = parse_activation(r);
  c.dim = r.required_size("hidden_size", kMaxWidth);
  c.n_layers = r.required_size("num_hidden_layers", kMaxLayers);
  c.n_heads = r.required_size("num_attention_heads", kMaxWidth);
  c.n_kv_heads = c.n_heads;
  c.ffn_dim = r.required_size("intermediate_size", kMaxWidth);
  c.vocab_size = r.required_size("vocab_size", kMaxVocab);
  c.max_positions = r.required_size("max_position_embeddings", kMaxPositions);
  c.type_vocab_size = r.optional_size("type_vocab_size", 2, kMaxVocab);  // both default to 2
  c.norm_eps = r.optional_float("layer_norm_eps", 1e-12f);               // transformers' default
  c.head_dim = head_dim_of(r, c.dim, "hidden_size", c.n_heads, "num_attention_heads");
  if (r.present("pad_token_id")) c.pad_id = r.token_id("pad_token_id");  // null: -1
  const std::string positions = r.optional_string("position_embedding_type", "absolute");
  if (positions != "absolute") {
    throw Error(r.path() + ": field 'position_embedding_type' is '" + positions +
                "'; only 'absolute' is supported");
  }
  if (r.optional_bool("is_decoder", false) || r.optional_bool("add_cross_attention", false)) {
    throw Error(r.path() +
                ": fields 'is_decoder' / 'add_cross_attention' are set; only the "
                "encoder is supported");
  }
  return c;
}

std::string bert_prefix(const TensorReader& w, const std::string& prefix) {
  const std::string probe = "embeddings.word_embeddings.weight";
  return !w.has(prefix + probe) && w.has(probe) ? "" : prefix;
}

void load_bert_encoder(TensorReader& w, Model& m, const std::string& pre) {
  const ModelConfig& c = m.config;
  const int64_t D = c.dim;
  auto norm = [&](const std::string& name) {
    return Norm{w.keep(name + ".weight", {D}), w.keep(name + ".bias", {D})};
  };
  auto linear = [&](const std::string& name, int in, int out) {
    return Linear{w.keep(name + ".weight", {out, in}), w.keep(name + ".bias", {out}), in, out,
                  false};
  };

  const std::string emb = pre + "embeddings.";
  m.token_embedding = w.keep(emb + "word_embeddings.weight", {c.vocab_size, D});
  m.position_embedding =
      w.keep(emb + "position_embeddings.weight", {(int64_t)c.position_offset + c.max_positions, D});
  m.token_type_embedding = w.keep(emb + "token_type_embeddings.weight", {c.type_vocab_size, D});
  m.embed_norm = norm(emb + "LayerNorm");
  for (int l = 0; l < c.n_layers; ++l) {
    const std::string p = layer_prefix(pre + "encoder.layer.", l);
    LayerWeights& L = m.layers[l];
    const std::string self = p + "attention.self.";
    // One GEMM for q, k and v: rows q, then k, then v.
    L.qkv = {
        w.fuse({{self + "query.weight", {D, D}},
                {self + "key.weight", {D, D}},
                {self + "value.weight", {D, D}}}),
        w.fuse({{self + "query.bias", {D}}, {self + "key.bias", {D}}, {self + "value.bias", {D}}}),
        c.dim, c.qkv_dim(), false};
    L.attn_out = linear(p + "attention.output.dense", c.dim, c.dim);
    L.attn_norm = norm(p + "attention.output.LayerNorm");
    L.mlp_in = linear(p + "intermediate.dense", c.dim, c.ffn_dim);
    L.mlp_out = linear(p + "output.dense", c.ffn_dim, c.dim);
    L.mlp_norm = norm(p + "output.LayerNorm");
  }
  if (c.task != TaskType::kSeqCls) return;
  if (c.classifier == ClassifierHead::kPooler) {
    // Part of the frozen model (PEFT trains only `classifier`). transformers draws a fresh
    // one when a checkpoint lacks it (BertForMaskedLM); that is refused here instead.
    m.pooler = linear(pre + "pooler.dense", c.dim, c.dim);
  }
  const auto head = encoder_head_tensors(c, c.num_labels());
  if (!w.has(head.front().name)) return;  // no base head: the trainer starts one
  for (const auto& t : head) {
    const std::vector<int64_t> shape(t.shape.begin(), t.shape.end());
    const float* data = w.keep(t.name, shape);
    xt::xarray<float> values = xt::zeros<float>(t.shape);
    std::copy_n(data, values.size(), values.data());
    m.classifier[t.name] = std::move(values);
  }
}

namespace {

ModelConfig parse_bert(const ConfigReader& r, const std::string&) {
  return parse_bert_encoder(r, Arch::kBert);
}

void load_bert(TensorReader& w, Model& m, const std::string&) {
  load_bert_encoder(w, m, bert_prefix(w, "bert."));
}

}  // namespace

const Family kBertFamily = {"bert", {"bert"}, parse_bert, load_bert};

}  // namespace ph
