// Weight loading: Hugging Face folders (single file, sharded, F32/BF16, gpt2 with and
// without the "transformer." prefix), llama2.c checkpoints, broken variants of each, and
// the demo model's two files giving the same network element for element.
#include <catch.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>

#include <nlohmann/json.hpp>

#include "models/common/error.h"
#include "models/common/mapped_file.h"
#include "models/engine/model.h"
#include "models/generate/generate.h"
#include "models/loader/hf_folder.h"
#include "models/loader/llama2c.h"
#include "models/loader/safetensors.h"
#include "test_support.h"

using Catch::Matchers::Contains;
using ph::DType;
namespace fs = std::filesystem;

namespace {

// ---- Tensors in memory, to build variants of the fixtures -------------------------------

struct HostTensor {
  std::vector<int64_t> shape;
  DType dtype = DType::kF32;  // kF32 (floats), kI64 (ints) or kBF16 (floats, truncated)
  std::vector<float> floats;
  std::vector<int64_t> ints;
};
using TensorMap = std::map<std::string, HostTensor>;

std::string fixture(const std::string& name) {
  return ph::test::fixtures_dir() + "/models/" + name;
}

TensorMap read_all(const std::string& path) {
  const ph::SafetensorsFile file(path);
  TensorMap out;
  for (const ph::TensorInfo& info : file.tensors()) {
    const ph::FloatTensor t = file.to_float(info);
    out[info.name] = {info.shape, DType::kF32, std::vector<float>(t.data, t.data + t.numel), {}};
  }
  return out;
}

uint16_t bf16_bits(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  return static_cast<uint16_t>(bits >> 16);
}

float bf16_truncate(float f) {
  const uint32_t bits = static_cast<uint32_t>(bf16_bits(f)) << 16;
  float out;
  std::memcpy(&out, &bits, 4);
  return out;
}

// Writes F32/I64 tensors with the project's writer; BF16 ones by hand (the writer has no
// BF16), in the same header layout.
void write_all(const std::string& path, const TensorMap& tensors) {
  bool any_bf16 = false;
  for (const auto& [name, t] : tensors) any_bf16 |= t.dtype == DType::kBF16;
  if (!any_bf16) {
    std::vector<ph::TensorToWrite> list;
    for (const auto& [name, t] : tensors) {
      list.push_back(t.dtype == DType::kI64 ? ph::i64_tensor(name, t.shape, t.ints.data())
                                            : ph::f32_tensor(name, t.shape, t.floats.data()));
    }
    ph::write_safetensors(path, list, {{"format", "pt"}});
    return;
  }
  nlohmann::json header;
  std::string data;
  for (const auto& [name, t] : tensors) {
    REQUIRE(t.dtype == DType::kBF16);
    const size_t begin = data.size();
    for (float f : t.floats) {
      const uint16_t b = bf16_bits(f);
      data.append(reinterpret_cast<const char*>(&b), 2);
    }
    header[name] = {{"dtype", "BF16"}, {"shape", t.shape}, {"data_offsets", {begin, data.size()}}};
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  const uint64_t n = text.size();
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(&n), 8);
  out << text << data;
}

// A temporary model folder: `config_from`'s config.json and `tensors` as model.safetensors.
std::string make_folder(const std::string& name, const std::string& config_from,
                        const TensorMap& tensors) {
  const std::string dir = ph::test::temp_dir("loading_" + name);
  fs::copy_file(config_from + "/config.json", dir + "/config.json");
  write_all(dir + "/model.safetensors", tensors);
  return dir;
}

void edit_config(const std::string& dir, const std::function<void(nlohmann::json&)>& edit) {
  nlohmann::json j;
  std::ifstream(dir + "/config.json") >> j;
  edit(j);
  std::ofstream(dir + "/config.json") << j.dump(2);
}

// ---- Comparing models ---------------------------------------------------------------

void require_same_config(const ph::ModelConfig& a, const ph::ModelConfig& b) {
  CHECK(a.arch == b.arch);
  CHECK(a.n_layers == b.n_layers);
  CHECK(a.dim == b.dim);
  CHECK(a.n_heads == b.n_heads);
  CHECK(a.n_kv_heads == b.n_kv_heads);
  CHECK(a.head_dim == b.head_dim);
  CHECK(a.ffn_dim == b.ffn_dim);
  CHECK(a.vocab_size == b.vocab_size);
  CHECK(a.max_positions == b.max_positions);
  CHECK(a.norm_eps == b.norm_eps);
  CHECK(a.rope_theta == b.rope_theta);
  CHECK(a.tied_head == b.tied_head);
  CHECK(a.qkv_bias == b.qkv_bias);
  CHECK(a.bos_id == b.bos_id);
  CHECK(a.eos_id == b.eos_id);
}

// Bit-for-bit equality of n floats; names the first differing element.
void require_same(const float* a, const float* b, size_t n, const std::string& what) {
  INFO(what);
  REQUIRE(a != nullptr);
  REQUIRE(b != nullptr);
  size_t first = n;
  for (size_t i = 0; i < n && first == n; ++i) {
    if (std::memcmp(a + i, b + i, sizeof(float)) != 0) first = i;
  }
  INFO("first difference at element " << first << " of " << n);
  REQUIRE(first == n);
}

void require_same_linear(const ph::Linear& a, const ph::Linear& b, const std::string& what) {
  INFO(what);
  REQUIRE(a.in == b.in);
  REQUIRE(a.out == b.out);
  REQUIRE(a.in_major == b.in_major);
  REQUIRE((a.b == nullptr) == (b.b == nullptr));
  require_same(a.w, b.w, static_cast<size_t>(a.in) * a.out, what + ".w");
  if (a.b) require_same(a.b, b.b, a.out, what + ".b");
}

void require_same_norm(const ph::Norm& a, const ph::Norm& b, int dim, const std::string& what) {
  require_same(a.w, b.w, dim, what + ".w");
  REQUIRE((a.b == nullptr) == (b.b == nullptr));
  if (a.b) require_same(a.b, b.b, dim, what + ".b");
}

void require_same_weights(const ph::Model& a, const ph::Model& b) {
  require_same_config(a.config, b.config);
  const ph::ModelConfig& c = a.config;
  require_same(a.token_embedding, b.token_embedding, size_t(c.vocab_size) * c.dim, "embedding");
  REQUIRE((a.position_embedding == nullptr) == (b.position_embedding == nullptr));
  if (a.position_embedding) {
    require_same(a.position_embedding, b.position_embedding, size_t(c.max_positions) * c.dim,
                 "positions");
  }
  REQUIRE(a.layers.size() == size_t(c.n_layers));
  REQUIRE(b.layers.size() == size_t(c.n_layers));
  for (int l = 0; l < c.n_layers; ++l) {
    const std::string p = "layer " + std::to_string(l) + " ";
    require_same_norm(a.layers[l].attn_norm, b.layers[l].attn_norm, c.dim, p + "attn_norm");
    require_same_linear(a.layers[l].qkv, b.layers[l].qkv, p + "qkv");
    require_same_linear(a.layers[l].attn_out, b.layers[l].attn_out, p + "attn_out");
    require_same_norm(a.layers[l].mlp_norm, b.layers[l].mlp_norm, c.dim, p + "mlp_norm");
    require_same_linear(a.layers[l].mlp_in, b.layers[l].mlp_in, p + "mlp_in");
    require_same_linear(a.layers[l].mlp_out, b.layers[l].mlp_out, p + "mlp_out");
  }
  require_same_norm(a.final_norm, b.final_norm, c.dim, "final_norm");
  require_same_linear(a.head, b.head, "head");
}

size_t mapped_files(const ph::Model& m) {
  size_t n = 0;
  for (const auto& s : m.storage) n += dynamic_cast<const ph::MappedFile*>(s.get()) != nullptr;
  return n;
}

// ---- llama2.c files -----------------------------------------------------------------

// A llama2.c checkpoint of the given header whose floats are 0, 1, 2, ... in export order.
// Returns the floats (without the header).
std::vector<float> write_llama2c(const std::string& path, const std::array<int32_t, 7>& h) {
  const int64_t D = h[0], F = h[1], L = h[2], H = h[3], KVH = h[4], V = h[5] < 0 ? -h[5] : h[5],
                S = h[6];
  const int64_t HD = D / H, KV = KVH * HD;
  const int64_t count = V * D + L * D + L * D * D + 2 * L * KV * D + L * D * D + L * D +
                        3 * L * F * D + D + S * HD + (h[5] < 0 ? V * D : 0);
  std::vector<float> floats(count);
  for (int64_t i = 0; i < count; ++i) floats[i] = static_cast<float>(i);
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(h.data()), 28);
  out.write(reinterpret_cast<const char*>(floats.data()), count * 4);
  return floats;
}

// The tensors of a llama2.c model as export.py takes them from the PyTorch model; the
// writers below lay them out as its legacy_export, version1_export and version2_export do.
struct Llama2cTensors {
  std::array<int32_t, 7> params;  // dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab, seq_len
  bool shared = true;             // the classifier is the embedding
  std::vector<float> emb, rms_att, rms_ffn, rms_final, wq, wk, wv, wo, w1, w2, w3, wcls;

  // The matrices, in export.py's order for version 1 and 2 (each one per-layer block).
  std::vector<std::vector<float>*> matrices() {
    std::vector<std::vector<float>*> m = {&emb, &wq, &wk, &wv, &wo, &w1, &w2, &w3};
    if (!shared) m.push_back(&wcls);
    return m;
  }
};

// Random tensors of the given geometry (values in [-1, 1), no group all zero).
Llama2cTensors random_llama2c(const std::array<int32_t, 7>& p, bool shared, uint64_t seed) {
  const size_t D = p[0], F = p[1], L = p[2], KV = size_t(p[4]) * (p[0] / p[3]), V = p[5];
  uint64_t state = seed;
  auto fill = [&](size_t n) {
    std::vector<float> v(n);
    for (float& x : v) {
      state = state * 6364136223846793005ULL + 1442695040888963407ULL;
      x = static_cast<float>(static_cast<double>(state >> 11) / 4503599627370496.0) - 1.0f;
    }
    return v;
  };
  Llama2cTensors t;
  t.params = p;
  t.shared = shared;
  t.emb = fill(V * D), t.rms_att = fill(L * D), t.rms_ffn = fill(L * D), t.rms_final = fill(D);
  t.wq = fill(L * D * D), t.wk = fill(L * KV * D), t.wv = fill(L * KV * D);
  t.wo = fill(L * D * D), t.w1 = fill(L * F * D), t.w2 = fill(L * D * F), t.w3 = fill(L * F * D);
  if (!shared) t.wcls = fill(V * D);
  return t;
}

void put(std::ofstream& out, const std::vector<float>& v) {
  out.write(reinterpret_cast<const char*>(v.data()), static_cast<std::streamsize>(v.size() * 4));
}

void write_legacy(const std::string& path, const Llama2cTensors& t) {
  std::array<int32_t, 7> header = t.params;
  if (!t.shared) header[5] = -header[5];
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(header.data()), 28);
  const size_t freq = size_t(t.params[6]) * (t.params[0] / t.params[3] / 2);
  for (const auto* v : {&t.emb, &t.rms_att, &t.wq, &t.wk, &t.wv, &t.wo, &t.rms_ffn, &t.w1, &t.w2,
                        &t.w3, &t.rms_final})
    put(out, *v);
  put(out, std::vector<float>(2 * freq, 0.5f));  // freq_cis_real, freq_cis_imag
  if (!t.shared) put(out, t.wcls);
}

// The 256-byte header of versions 1 and 2 (group_size only in version 2).
void write_versioned_header(std::ofstream& out, const Llama2cTensors& t, int32_t version,
                            int32_t group_size) {
  std::string header(256, '\0');
  const uint32_t magic = 0x616b3432;
  std::memcpy(&header[0], &magic, 4);
  std::memcpy(&header[4], &version, 4);
  std::memcpy(&header[8], t.params.data(), 28);
  header[36] = t.shared ? 1 : 0;
  if (version == 2) std::memcpy(&header[37], &group_size, 4);
  out.write(header.data(), 256);
}

void write_v1(const std::string& path, Llama2cTensors t) {
  std::ofstream out(path, std::ios::binary);
  write_versioned_header(out, t, 1, 0);
  for (const auto* v : {&t.rms_att, &t.rms_ffn, &t.rms_final}) put(out, *v);
  for (const auto* v : t.matrices()) put(out, *v);
}

// Q8_0 as export.py quantises: per group of group_size values, scale = max |w| / 127 and
// q = round(w / scale), each layer's matrix on its own. Writes the file and returns the
// tensors with the values it holds, q * scale.
Llama2cTensors write_v2(const std::string& path, Llama2cTensors t, int32_t group_size) {
  std::ofstream out(path, std::ios::binary);
  write_versioned_header(out, t, 2, group_size);
  for (const auto* v : {&t.rms_att, &t.rms_ffn, &t.rms_final}) put(out, *v);
  const size_t L = t.params[2];
  for (std::vector<float>* m : t.matrices()) {
    const size_t items = m == &t.emb || m == &t.wcls ? 1 : L, numel = m->size() / items;
    for (size_t i = 0; i < items; ++i) {
      float* w = m->data() + i * numel;
      std::vector<int8_t> q(numel);
      std::vector<float> scales(numel / group_size);
      for (size_t g = 0; g < scales.size(); ++g) {
        float wmax = 0;
        for (size_t j = g * group_size; j < (g + 1) * group_size; ++j)
          wmax = std::max(wmax, std::fabs(w[j]));
        scales[g] = wmax / 127.0f;
        for (size_t j = g * group_size; j < (g + 1) * group_size; ++j) {
          q[j] = static_cast<int8_t>(std::nearbyint(w[j] / scales[g]));
          w[j] = q[j] * scales[g];
        }
      }
      out.write(reinterpret_cast<const char*>(q.data()), static_cast<std::streamsize>(numel));
      put(out, scales);
    }
  }
  return t;
}

void copy_prefix(const std::string& from, const std::string& to, size_t bytes) {
  std::ifstream in(from, std::ios::binary);
  std::string data(bytes, '\0');
  in.read(data.data(), static_cast<std::streamsize>(bytes));
  std::ofstream(to, std::ios::binary) << data;
}

}  // namespace

// =========================================================================================

TEST_CASE("loading: llama-tiny fixture", "[loading]") {
  const ph::Model m = ph::load_model(fixture("llama-tiny"));
  const ph::ModelConfig& c = m.config;
  REQUIRE(c.arch == ph::Arch::kLlama);
  REQUIRE(c.dim == 64);
  REQUIRE(c.n_layers == 2);
  REQUIRE(m.layers.size() == 2);
  CHECK(m.position_embedding == nullptr);

  const ph::LayerWeights& L = m.layers[1];
  CHECK(L.qkv.in == 64);
  CHECK(L.qkv.out == 128);  // 4 query heads + 2 x 2 key/value heads, of 16
  CHECK_FALSE(L.qkv.in_major);
  CHECK(L.qkv.b == nullptr);
  CHECK(L.attn_out.in == 64);
  CHECK(L.attn_out.out == 64);
  CHECK(L.mlp_in.in == 64);
  CHECK(L.mlp_in.out == 344);
  CHECK(L.mlp_out.in == 172);
  CHECK(L.mlp_out.out == 64);
  CHECK(L.attn_norm.b == nullptr);
  CHECK(m.head.out == 97);
  CHECK(m.head.in == 64);
  CHECK(m.head.w != m.token_embedding);  // not tied

  // The fused buffers hold q, k, v (and gate, up) rows in order; the rest is as stored.
  const TensorMap t = read_all(fixture("llama-tiny/model.safetensors"));
  const std::string p = "model.layers.1.";
  require_same(L.qkv.w, t.at(p + "self_attn.q_proj.weight").floats.data(), 64 * 64, "q rows");
  require_same(L.qkv.w + 64 * 64, t.at(p + "self_attn.k_proj.weight").floats.data(), 32 * 64,
               "k rows");
  require_same(L.qkv.w + 96 * 64, t.at(p + "self_attn.v_proj.weight").floats.data(), 32 * 64,
               "v rows");
  require_same(L.mlp_in.w, t.at(p + "mlp.gate_proj.weight").floats.data(), 172 * 64, "gate rows");
  require_same(L.mlp_in.w + 172 * 64, t.at(p + "mlp.up_proj.weight").floats.data(), 172 * 64,
               "up rows");
  require_same(L.mlp_out.w, t.at(p + "mlp.down_proj.weight").floats.data(), 64 * 172, "down");
  require_same(L.attn_out.w, t.at(p + "self_attn.o_proj.weight").floats.data(), 64 * 64, "o");
  require_same(L.mlp_norm.w, t.at(p + "post_attention_layernorm.weight").floats.data(), 64,
               "post_attention_layernorm");
  require_same(m.final_norm.w, t.at("model.norm.weight").floats.data(), 64, "norm");
  require_same(m.head.w, t.at("lm_head.weight").floats.data(), 97 * 64, "lm_head");

  // Float32 weights used as stored are views into the one mapping of the file.
  REQUIRE(mapped_files(m) == 1);
  for (const auto& s : m.storage) {
    if (const auto* f = dynamic_cast<const ph::MappedFile*>(s.get())) {
      const auto* e = reinterpret_cast<const uint8_t*>(m.token_embedding);
      CHECK(e >= f->data());
      CHECK(e < f->data() + f->size());
    }
  }
}

TEST_CASE("loading: gpt2-tiny fixture, with and without the transformer. prefix", "[loading]") {
  const ph::Model m = ph::load_model(fixture("gpt2-tiny"));
  const ph::ModelConfig& c = m.config;
  REQUIRE(c.arch == ph::Arch::kGpt2);
  REQUIRE(m.layers.size() == 2);
  REQUIRE(m.position_embedding != nullptr);
  const ph::LayerWeights& L = m.layers[0];
  CHECK(L.qkv.in_major);
  CHECK(L.qkv.in == 64);
  CHECK(L.qkv.out == 192);
  CHECK(L.qkv.b != nullptr);
  CHECK(L.attn_out.in_major);
  CHECK(L.mlp_in.out == 256);
  CHECK(L.mlp_out.in == 256);
  CHECK(L.attn_norm.b != nullptr);
  CHECK(m.final_norm.b != nullptr);
  CHECK(m.head.w == m.token_embedding);  // tied
  CHECK(m.head.out == 97);
  CHECK(m.head.in == 64);
  CHECK_FALSE(m.head.in_major);

  TensorMap t = read_all(fixture("gpt2-tiny/model.safetensors"));
  require_same(L.qkv.w, t.at("transformer.h.0.attn.c_attn.weight").floats.data(), 64 * 192,
               "c_attn");
  require_same(L.mlp_in.b, t.at("transformer.h.0.mlp.c_fc.bias").floats.data(), 256, "c_fc.b");
  require_same(m.position_embedding, t.at("transformer.wpe.weight").floats.data(), 128 * 64, "wpe");

  // GPT2Model checkpoints name the same tensors without "transformer.".
  TensorMap bare;
  for (auto& [name, tensor] : t) bare[name.substr(std::string("transformer.").size())] = tensor;
  REQUIRE(bare.count("h.0.ln_1.weight") == 1);
  const std::string dir = make_folder("gpt2_bare", fixture("gpt2-tiny"), bare);
  require_same_weights(ph::load_model(dir), m);
}

TEST_CASE("loading: load_model picks the loader from the path", "[loading]") {
  const ph::Model folder = ph::load_model(fixture("llama-tiny"));
  require_same_weights(ph::load_model(fixture("llama-tiny/model.safetensors")), folder);

  // Any other .safetensors name is read as the weights of its folder's config.
  const std::string dir = ph::test::temp_dir("loading_custom_name");
  fs::copy_file(fixture("llama-tiny/config.json"), dir + "/config.json");
  fs::copy_file(fixture("llama-tiny/model.safetensors"), dir + "/finetuned.safetensors");
  require_same_weights(ph::load_model(dir + "/finetuned.safetensors"), folder);
  REQUIRE_THROWS_WITH(ph::load_model(dir), Contains(dir) && Contains("no model.safetensors"));

  std::ofstream(dir + "/weights.txt") << "x";
  REQUIRE_THROWS_WITH(ph::load_model(dir + "/weights.txt"),
                      Contains("weights.txt") && Contains("expected a Hugging Face folder"));
  REQUIRE_THROWS_WITH(ph::load_model(dir + "/nothing"),
                      Contains("nothing") && Contains("no such file"));
  fs::remove(dir + "/config.json");
  REQUIRE_THROWS_WITH(ph::load_model(dir + "/finetuned.safetensors"),
                      Contains(dir + "/config.json"));
}

TEST_CASE("loading: broken Hugging Face folders name the tensor", "[loading]") {
  const std::string llama = fixture("llama-tiny");
  const TensorMap good = read_all(llama + "/model.safetensors");

  SECTION("a tensor missing") {
    TensorMap t = good;
    t.erase("model.layers.1.mlp.up_proj.weight");
    const std::string dir = make_folder("missing_tensor", llama, t);
    REQUIRE_THROWS_WITH(ph::load_model(dir), Contains("model.safetensors") &&
                                                 Contains("'model.layers.1.mlp.up_proj.weight'") &&
                                                 Contains("missing"));
  }
  SECTION("a tensor of the wrong shape") {
    TensorMap t = good;
    t.at("model.layers.0.self_attn.k_proj.weight").shape = {64, 32};
    const std::string dir = make_folder("wrong_shape", llama, t);
    REQUIRE_THROWS_WITH(ph::load_model(dir),
                        Contains("model.safetensors") &&
                            Contains("'model.layers.0.self_attn.k_proj.weight'") &&
                            Contains("has shape [64, 32], expected [32, 64]"));
  }
  SECTION("a tensor of the wrong dtype") {
    TensorMap t = good;
    HostTensor& norm = t.at("model.norm.weight");
    norm.dtype = DType::kI64;
    norm.ints.assign(64, 1);
    const std::string dir = make_folder("wrong_dtype", llama, t);
    REQUIRE_THROWS_WITH(ph::load_model(dir), Contains("'model.norm.weight'") &&
                                                 Contains("has dtype I64") &&
                                                 Contains("F32, F16 or BF16"));
  }
  SECTION("no lm_head while the head is not tied") {
    TensorMap t = good;
    t.erase("lm_head.weight");
    const std::string dir = make_folder("no_lm_head", llama, t);
    REQUIRE_THROWS_WITH(ph::load_model(dir),
                        Contains("'lm_head.weight'") && Contains("tie_word_embeddings"));
    // Tied, the embedding serves as the head.
    edit_config(dir, [](nlohmann::json& j) { j["tie_word_embeddings"] = true; });
    const ph::Model m = ph::load_model(dir);
    CHECK(m.head.w == m.token_embedding);
  }
  SECTION("attention biases the config does not enable") {
    TensorMap t = good;
    t["model.layers.0.self_attn.q_proj.bias"] = {{64}, DType::kF32, std::vector<float>(64), {}};
    const std::string dir = make_folder("stray_bias", llama, t);
    REQUIRE_THROWS_WITH(ph::load_model(dir), Contains("'model.layers.0.self_attn.q_proj.bias'") &&
                                                 Contains("attention_bias"));
  }
  SECTION("a gpt2 tensor missing names its full name") {
    TensorMap t = read_all(fixture("gpt2-tiny/model.safetensors"));
    t.erase("transformer.h.1.ln_2.bias");
    const std::string dir = make_folder("gpt2_missing", fixture("gpt2-tiny"), t);
    REQUIRE_THROWS_WITH(ph::load_model(dir), Contains("'transformer.h.1.ln_2.bias'"));
  }
}

TEST_CASE("loading: q/k/v biases are fused like the weights", "[loading]") {
  TensorMap t = read_all(fixture("llama-tiny/model.safetensors"));
  for (int l = 0; l < 2; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".self_attn.";
    for (auto [proj, n] : {std::pair{"q", 64}, std::pair{"k", 32}, std::pair{"v", 32}}) {
      std::vector<float> b(n);
      for (int i = 0; i < n; ++i) b[i] = static_cast<float>(1000 * l + 100 * proj[0] + i);
      t[p + proj + "_proj.bias"] = {{n}, DType::kF32, b, {}};
    }
  }
  const std::string dir = make_folder("qkv_bias", fixture("llama-tiny"), t);
  edit_config(dir, [](nlohmann::json& j) { j["attention_bias"] = true; });
  const ph::Model m = ph::load_model(dir);
  REQUIRE(m.config.qkv_bias);
  const ph::Linear& qkv = m.layers[1].qkv;
  REQUIRE(qkv.b != nullptr);
  const std::string p = "model.layers.1.self_attn.";
  require_same(qkv.b, t.at(p + "q_proj.bias").floats.data(), 64, "q bias");
  require_same(qkv.b + 64, t.at(p + "k_proj.bias").floats.data(), 32, "k bias");
  require_same(qkv.b + 96, t.at(p + "v_proj.bias").floats.data(), 32, "v bias");

  // transformers' attention_bias gives o_proj a bias too, when the checkpoint has one
  REQUIRE(m.layers[1].attn_out.b == nullptr);
  std::vector<float> ob(64);
  for (int i = 0; i < 64; ++i) ob[i] = static_cast<float>(7 * i);
  TensorMap with_out = t;
  with_out[p + "o_proj.bias"] = {{64}, DType::kF32, ob, {}};
  const ph::Model mo = ph::load_model(make_folder("o_proj_bias", dir, with_out));
  REQUIRE(mo.layers[1].attn_out.b != nullptr);
  require_same(mo.layers[1].attn_out.b, ob.data(), 64, "o bias");

  t.erase(p + "v_proj.bias");
  const std::string broken = make_folder("qkv_bias_missing", dir, t);
  REQUIRE_THROWS_WITH(ph::load_model(broken), Contains("'" + p + "v_proj.bias'"));
}

TEST_CASE("loading: BF16 weights are widened and outlive the file", "[loading]") {
  TensorMap f32 = read_all(fixture("llama-tiny/model.safetensors"));
  TensorMap bf16 = f32;
  for (auto& [name, t] : f32) {
    for (float& v : t.floats) v = bf16_truncate(v);
  }
  for (auto& [name, t] : bf16) t.dtype = DType::kBF16;
  const std::string f32_dir = make_folder("truncated_f32", fixture("llama-tiny"), f32);
  const std::string bf16_dir = make_folder("bf16", fixture("llama-tiny"), bf16);
  const ph::Model from_bf16 = ph::load_model(bf16_dir);
  fs::remove_all(bf16_dir);  // nothing of the model may still point into the file
  CHECK(mapped_files(from_bf16) == 0);
  require_same_weights(from_bf16, ph::load_model(f32_dir));
}

TEST_CASE("loading: a sharded folder equals the single-file one", "[loading]") {
  const TensorMap all = read_all(fixture("llama-tiny/model.safetensors"));
  TensorMap shard[2];
  nlohmann::json weight_map;
  const std::string names[2] = {"model-00001-of-00002.safetensors",
                                "model-00002-of-00002.safetensors"};
  size_t i = 0;
  for (const auto& [name, t] : all) {
    shard[i % 2][name] = t;
    weight_map[name] = names[i % 2];
    ++i;
  }
  const std::string dir = ph::test::temp_dir("loading_sharded");
  fs::copy_file(fixture("llama-tiny/config.json"), dir + "/config.json");
  for (int s = 0; s < 2; ++s) write_all(dir + "/" + names[s], shard[s]);
  auto write_index = [&](const nlohmann::json& map) {
    std::ofstream(dir + "/model.safetensors.index.json")
        << nlohmann::json{{"metadata", {{"total_size", 413440}}}, {"weight_map", map}}.dump(2);
  };
  write_index(weight_map);

  const ph::Model sharded = ph::load_model(dir);
  require_same_weights(sharded, ph::load_model(fixture("llama-tiny")));
  CHECK(mapped_files(sharded) == 2);  // each shard mapped once

  SECTION("a tensor the index places in the wrong shard") {
    nlohmann::json wrong = weight_map;
    const std::string name = shard[1].begin()->first;
    wrong[name] = names[0];
    write_index(wrong);
    REQUIRE_THROWS_WITH(ph::load_model(dir),
                        Contains(names[0]) && Contains("'" + name + "'") && Contains("shard"));
  }
  SECTION("a tensor missing from the index") {
    nlohmann::json partial = weight_map;
    partial.erase("model.norm.weight");
    write_index(partial);
    REQUIRE_THROWS_WITH(ph::load_model(dir), Contains("model.safetensors.index.json") &&
                                                 Contains("'model.norm.weight'"));
  }
  SECTION("a shard path leaving the folder") {
    nlohmann::json evil = weight_map;
    evil["model.norm.weight"] = "../model-00001-of-00002.safetensors";
    write_index(evil);
    REQUIRE_THROWS_WITH(ph::load_model(dir), Contains("../model-00001-of-00002.safetensors") &&
                                                 Contains("inside the model folder"));
  }
  SECTION("a missing shard") {
    fs::remove(dir + "/" + names[1]);
    REQUIRE_THROWS_WITH(ph::load_model(dir), Contains(names[1]) && Contains("is missing"));
  }
  SECTION("an index that is not JSON") {
    std::ofstream(dir + "/model.safetensors.index.json") << "{\"weight_map\": ";
    REQUIRE_THROWS_WITH(ph::load_model(dir),
                        Contains("model.safetensors.index.json") && Contains("not valid JSON"));
  }
}

TEST_CASE("loading: llama2.c checkpoints, rotary rows permuted to rotate_half", "[loading]") {
  const std::string dir = ph::test::temp_dir("loading_llama2c");
  const std::string path = dir + "/tiny.bin";
  // dim 16, hidden 12, 2 layers, 2 heads (of 8: a head of 4 would make the permutation its
  // own inverse and hide its direction), 1 kv head, vocab 5 with a separate classifier
  // (negative), context 4.
  const std::vector<float> f = write_llama2c(path, {16, 12, 2, 2, 1, -5, 4});
  const ph::Model m = ph::load_model(path);
  const ph::ModelConfig& c = m.config;
  CHECK(c.arch == ph::Arch::kLlama);
  CHECK(c.dim == 16);
  CHECK(c.ffn_dim == 12);
  CHECK(c.n_layers == 2);
  CHECK(c.n_heads == 2);
  CHECK(c.n_kv_heads == 1);
  CHECK(c.head_dim == 8);
  CHECK(c.vocab_size == 5);
  CHECK(c.max_positions == 4);
  CHECK_FALSE(c.tied_head);
  CHECK(c.norm_eps == 1e-5f);
  CHECK(c.rope_theta == 10000.0f);
  CHECK(c.bos_id == 1);
  CHECK(c.eos_id == 2);

  // Offsets of the export order.
  const size_t D = 16, F = 12, L = 2, HD = 8, KV = 8, V = 5, S = 4;
  const size_t emb = 0, rms_att = emb + V * D, wq = rms_att + L * D, wk = wq + L * D * D,
               wv = wk + L * KV * D, wo = wv + L * KV * D, rms_ffn = wo + L * D * D,
               w1 = rms_ffn + L * D, w2 = w1 + L * F * D, w3 = w2 + L * D * F,
               rms_final = w3 + L * F * D, freq = rms_final + D,
               wcls = freq + 2 * S * HD / 2;  // freq_cis real and imag
  REQUIRE(wcls + V * D == f.size());

  require_same(m.token_embedding, f.data() + emb, V * D, "embedding");
  require_same(m.head.w, f.data() + wcls, V * D, "wcls");
  CHECK(m.head.w != m.token_embedding);
  require_same(m.final_norm.w, f.data() + rms_final, D, "rms_final");
  const size_t l = 1;
  const ph::LayerWeights& layer = m.layers[l];
  require_same(layer.attn_norm.w, f.data() + rms_att + l * D, D, "rms_att");
  require_same(layer.mlp_norm.w, f.data() + rms_ffn + l * D, D, "rms_ffn");
  require_same(layer.attn_out.w, f.data() + wo + l * D * D, D * D, "wo");
  require_same(layer.mlp_out.w, f.data() + w2 + l * D * F, D * F, "w2");
  require_same(layer.mlp_in.w, f.data() + w1 + l * F * D, F * D, "w1 -> gate rows");
  require_same(layer.mlp_in.w + F * D, f.data() + w3 + l * F * D, F * D, "w3 -> up rows");
  // Within each head, new row j = old row 2j and new row j + HD/2 = old row 2j + 1.
  const size_t order[HD] = {0, 2, 4, 6, 1, 3, 5, 7};
  for (size_t h = 0; h < 2; ++h) {
    for (size_t j = 0; j < HD; ++j) {
      require_same(layer.qkv.w + (h * HD + j) * D,
                   f.data() + wq + l * D * D + (h * HD + order[j]) * D, D,
                   "q row " + std::to_string(h * HD + j));
    }
  }
  for (size_t j = 0; j < HD; ++j) {
    require_same(layer.qkv.w + (D + j) * D, f.data() + wk + l * KV * D + order[j] * D, D,
                 "k row " + std::to_string(j));
  }
  require_same(layer.qkv.w + (D + KV) * D, f.data() + wv + l * KV * D, KV * D,
               "v rows, unpermuted");
}

TEST_CASE("loading: llama2.c headers and sizes are checked", "[loading]") {
  const std::string dir = ph::test::temp_dir("loading_llama2c_bad");
  const std::string demo = ph::test::source_path("models/demo/fortune-llama.bin");
  const size_t size = fs::file_size(demo);

  const std::string truncated = dir + "/truncated.bin";
  copy_prefix(demo, truncated, size - 4);
  REQUIRE_THROWS_WITH(ph::load_model(truncated),
                      Contains(truncated) && Contains(std::to_string(size - 4) + " bytes") &&
                          Contains("implies " + std::to_string(size) + " bytes"));

  const std::string longer = dir + "/longer.bin";
  fs::copy_file(demo, longer);
  std::ofstream(longer, std::ios::app | std::ios::binary) << "x";
  REQUIRE_THROWS_WITH(ph::load_model(longer), Contains(longer) &&
                                                  Contains(std::to_string(size + 1) + " bytes") &&
                                                  Contains("implies " + std::to_string(size)));

  const std::string tiny = dir + "/tiny.bin";
  std::ofstream(tiny, std::ios::binary) << "0123456789";
  REQUIRE_THROWS_WITH(ph::load_model(tiny), Contains(tiny) && Contains("truncated"));

  const std::string bad = dir + "/bad.bin";
  write_llama2c(bad, {8, 12, 2, 3, 1, 5, 4});
  REQUIRE_THROWS_WITH(ph::load_model(bad),
                      Contains(bad) && Contains("dim (8) is not divisible by n_heads (3)"));
  write_llama2c(bad, {8, 12, 2, 2, 2, 5, 0});
  REQUIRE_THROWS_WITH(ph::load_model(bad), Contains(bad) && Contains("seq_len = 0"));
  write_llama2c(bad, {8, 12, 2, 4, 3, 5, 4});
  REQUIRE_THROWS_WITH(ph::load_model(bad),
                      Contains("n_heads (4) is not divisible by n_kv_heads (3)"));

  // Sizes whose products would overflow 64 bits are beyond the limits, refused first.
  std::array<int32_t, 7> huge = {65536, 1 << 30, 1 << 30, 1, 1, 5, 4};
  std::ofstream(bad, std::ios::binary).write(reinterpret_cast<const char*>(huge.data()), 28);
  REQUIRE_THROWS_WITH(ph::load_model(bad),
                      Contains(bad) && Contains("n_layers (1073741824) exceeds 1024"));
}

TEST_CASE("loading: the demo's llama2.c and Hugging Face files are the same network",
          "[loading][demo]") {
  // The .bin has llama2.c's interleaved rotary rows; the HF folder has them permuted to
  // rotate_half. Identical weights here prove the loader's q/k permutation.
  const ph::Model from_bin = ph::load_model(ph::test::source_path("models/demo/fortune-llama.bin"));
  const ph::Model from_hf = ph::load_model(ph::test::source_path("models/demo/hf"));
  CHECK(from_bin.config.dim == 128);
  CHECK(from_bin.config.n_layers == 5);
  CHECK(from_bin.config.tied_head);
  CHECK(from_bin.head.w == from_bin.token_embedding);
  CHECK(from_bin.config.max_positions == 256);
  require_same_weights(from_bin, from_hf);
}

TEST_CASE("loading: llama2.c export versions 1 and 2 load as the legacy file does", "[loading]") {
  const std::string dir = ph::test::temp_dir("loading_llama2c_versions");
  // dim 16, hidden 24, 2 layers, 2 heads (of 8), 1 key/value head, vocabulary 5, context 4
  const std::array<int32_t, 7> geometry = {16, 24, 2, 2, 1, 5, 4};
  for (const bool shared : {true, false}) {
    INFO("shared classifier: " << shared);
    const Llama2cTensors t = random_llama2c(geometry, shared, 7);
    write_legacy(dir + "/v0.bin", t);
    write_v1(dir + "/v1.bin", t);
    const ph::Model legacy = ph::load_model(dir + "/v0.bin");
    REQUIRE(legacy.config.tied_head == shared);
    require_same_weights(ph::load_model(dir + "/v1.bin"), legacy);

    // version 2 holds q * scale: the float32 files of those values load to the same model
    const Llama2cTensors q = write_v2(dir + "/v2.bin", t, 8);
    CHECK(q.w1 != t.w1);  // quantisation changed the values
    write_legacy(dir + "/v2-as-v0.bin", q);
    require_same_weights(ph::load_model(dir + "/v2.bin"), ph::load_model(dir + "/v2-as-v0.bin"));
  }
}

TEST_CASE("loading: the real stories260K in version 1 is the legacy file's network", "[loading]") {
  const std::string dir = ph::test::fixtures_dir() + "/llama2c";
  const ph::Model legacy = ph::load_model(dir + "/stories260K.bin");
  const ph::Model v1 = ph::load_model(dir + "/stories260K_v1.bin");
  CHECK(v1.config.dim == 64);
  CHECK(v1.config.n_layers == 5);
  CHECK(v1.config.n_kv_heads == 4);
  CHECK(v1.config.vocab_size == 512);
  CHECK(v1.config.max_positions == 512);
  CHECK(v1.config.tied_head);
  require_same_weights(v1, legacy);
  ph::GenerateOptions greedy;
  greedy.max_new_tokens = 40;
  greedy.sampling.temperature = 0;
  CHECK(ph::generate(v1, ph::InjectionCache(), {1}, greedy) ==
        ph::generate(legacy, ph::InjectionCache(), {1}, greedy));
}

TEST_CASE("loading: llama2.c versioned headers are checked, each error naming the file",
          "[loading]") {
  const std::string dir = ph::test::temp_dir("loading_llama2c_versions_bad");
  const Llama2cTensors t = random_llama2c({16, 24, 2, 2, 1, 5, 4}, true, 3);
  const std::string good = dir + "/v1.bin", bad = dir + "/bad.bin";
  write_v1(good, t);
  auto patch = [&](size_t offset, const void* bytes, size_t n) {
    std::fstream f(bad, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(offset));
    f.write(static_cast<const char*>(bytes), static_cast<std::streamsize>(n));
  };
  auto patched = [&](size_t offset, const void* bytes, size_t n) {
    fs::copy_file(good, bad, fs::copy_options::overwrite_existing);
    patch(offset, bytes, n);
  };
  const int32_t three = 3;
  patched(4, &three, 4);
  CHECK_THAT(ph::test::error_of([&] { ph::load_model(bad); }),
             Contains(bad) && Contains("llama2.c checkpoint version 3 is not supported") &&
                 Contains("versions 0 (legacy), 1 (float32) and 2 (int8 Q8_0)"));
  const uint8_t flag = 2;
  patched(36, &flag, 1);
  CHECK_THAT(ph::test::error_of([&] { ph::load_model(bad); }),
             Contains(bad) && Contains("shared_classifier = 2"));
  const int32_t negative_vocab = -5;  // only version 0 marks a classifier by the sign
  patched(8 + 5 * 4, &negative_vocab, 4);
  CHECK_THAT(ph::test::error_of([&] { ph::load_model(bad); }), Contains("vocab_size = -5"));
  copy_prefix(good, bad, 200);
  CHECK_THAT(ph::test::error_of([&] { ph::load_model(bad); }),
             Contains(bad) && Contains("truncated") && Contains("256"));
  copy_prefix(good, bad, fs::file_size(good) - 4);
  CHECK_THAT(
      ph::test::error_of([&] { ph::load_model(bad); }),
      Contains("version 1, dim 16") && Contains("implies " + std::to_string(fs::file_size(good))));

  write_v2(bad, t, 16);
  REQUIRE_NOTHROW(ph::load_model(bad));
  const int32_t odd_group = 7;  // the embedding's 5 * 16 values are not groups of 7
  patch(37, &odd_group, 4);
  CHECK_THAT(ph::test::error_of([&] { ph::load_model(bad); }),
             Contains(bad) && Contains("not a multiple of group_size 7"));
  const int32_t group_zero = 0;
  patch(37, &group_zero, 4);
  CHECK_THAT(ph::test::error_of([&] { ph::load_model(bad); }), Contains("group_size = 0"));
}
