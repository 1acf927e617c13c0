#include "models/loader/llama2c.h"

#include <cstdint>
#include <cstring>

#include "models/common/error.h"
#include "models/common/mapped_file.h"

namespace ph {

namespace {

// dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len.
constexpr size_t kHeaderInts = 7;
constexpr size_t kHeaderBytes = kHeaderInts * sizeof(int32_t);

struct Header {
  int dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len;
  bool shared_classifier;  // vocab_size > 0 in the file: no separate wcls
};

Header read_header(const MappedFile& file) {
  const std::string& path = file.path();
  if (file.size() < kHeaderBytes) {
    throw Error(path + ": truncated llama2.c checkpoint (" + std::to_string(file.size()) +
                " bytes; the header alone takes " + std::to_string(kHeaderBytes) + ")");
  }
  int32_t v[kHeaderInts];
  std::memcpy(v, file.data(), kHeaderBytes);
  const char* names[kHeaderInts] = {"dim",        "hidden_dim", "n_layers", "n_heads",
                                    "n_kv_heads", "vocab_size", "seq_len"};
  for (size_t i = 0; i < kHeaderInts; ++i) {
    // vocab_size may be negative (a separate classifier follows), never zero.
    const bool ok = i == 5 ? v[i] != 0 && v[i] != INT32_MIN : v[i] > 0;
    if (!ok) {
      throw Error(path + ": bad llama2.c header: " + names[i] + " = " + std::to_string(v[i]));
    }
  }
  Header h{v[0], v[1], v[2], v[3], v[4], v[5] > 0 ? v[5] : -v[5], v[6], v[5] > 0};
  if (h.dim % h.n_heads != 0) {
    throw Error(path + ": bad llama2.c header: dim (" + std::to_string(h.dim) +
                ") is not divisible by n_heads (" + std::to_string(h.n_heads) + ")");
  }
  if (h.n_heads % h.n_kv_heads != 0) {
    throw Error(path + ": bad llama2.c header: n_heads (" + std::to_string(h.n_heads) +
                ") is not divisible by n_kv_heads (" + std::to_string(h.n_kv_heads) + ")");
  }
  return h;
}

// The float count a header implies, in export order, with overflow checks: the header is
// untrusted and its products can exceed 64 bits.
class SizeCounter {
 public:
  void add(std::initializer_list<uint64_t> factors) {
    uint64_t product = 1;
    for (uint64_t f : factors) overflow_ |= __builtin_mul_overflow(product, f, &product);
    overflow_ |= __builtin_add_overflow(total_, product, &total_);
  }
  bool overflow() const { return overflow_; }
  uint64_t total() const { return total_; }

 private:
  uint64_t total_ = 0;
  bool overflow_ = false;
};

// llama2.c rotates interleaved pairs (2j, 2j+1) of each head by frequency j; transformers'
// rotate_half pairs (j, j + hd/2) by the same frequency. Moving row 2j to j and row 2j+1
// to j + hd/2 within each head makes the rotate_half kernel compute exactly what llama2.c
// does (the attention scores q·k are unchanged by permuting both q and k alike).
void copy_rotary_rows(const float* src, int n_heads, int head_dim, int dim, float* dst) {
  const int half = head_dim / 2;
  const size_t row = static_cast<size_t>(dim);
  for (int h = 0; h < n_heads; ++h) {
    const size_t head = static_cast<size_t>(h) * head_dim;
    for (int j = 0; j < half; ++j) {
      std::memcpy(dst + (head + j) * row, src + (head + 2 * j) * row, row * sizeof(float));
      std::memcpy(dst + (head + half + j) * row, src + (head + 2 * j + 1) * row,
                  row * sizeof(float));
    }
  }
}

}  // namespace

Model load_llama2c(const std::string& path) {
  auto file = std::make_shared<MappedFile>(path);
  const Header h = read_header(*file);

  Model m;
  ModelConfig& c = m.config;
  c.arch = Arch::kLlama;
  c.dim = h.dim;
  c.ffn_dim = h.hidden_dim;
  c.n_layers = h.n_layers;
  c.n_heads = h.n_heads;
  c.n_kv_heads = h.n_kv_heads;
  c.head_dim = h.dim / h.n_heads;
  c.vocab_size = h.vocab_size;
  c.max_positions = h.seq_len;
  c.norm_eps = 1e-5f;       // llama2.c's rmsnorm constant
  c.rope_theta = 10000.0f;  // llama2.c's fixed rotary base
  c.tied_head = h.shared_classifier;
  c.qkv_bias = false;
  c.bos_id = 1;  // llama2.c's sentencepiece convention
  c.eos_id = 2;
  validate_config(c, path);

  const uint64_t D = c.dim, F = c.ffn_dim, L = c.n_layers, V = c.vocab_size;
  const uint64_t KV = c.kv_dim(), HD = c.head_dim, S = c.max_positions;
  SizeCounter count;
  count.add({V, D});                    // token_embedding_table
  count.add({L, D});                    // rms_att_weight
  count.add({L, D, D});                 // wq
  count.add({L, KV, D});                // wk
  count.add({L, KV, D});                // wv
  count.add({L, D, D});                 // wo
  count.add({L, D});                    // rms_ffn_weight
  count.add({L, F, D});                 // w1
  count.add({L, D, F});                 // w2
  count.add({L, F, D});                 // w3
  count.add({D});                       // rms_final_weight
  count.add({2, S, HD / 2});            // freq_cis_real, freq_cis_imag (unused)
  if (!c.tied_head) count.add({V, D});  // wcls
  uint64_t expected = 0;
  const bool overflow = count.overflow() ||
                        __builtin_mul_overflow(count.total(), uint64_t{4}, &expected) ||
                        __builtin_add_overflow(expected, uint64_t{kHeaderBytes}, &expected);
  if (overflow || expected != file->size()) {
    throw Error(path + ": llama2.c checkpoint is " + std::to_string(file->size()) +
                " bytes but its header (dim " + std::to_string(h.dim) + ", hidden_dim " +
                std::to_string(h.hidden_dim) + ", n_layers " + std::to_string(h.n_layers) +
                ", n_heads " + std::to_string(h.n_heads) + ", n_kv_heads " +
                std::to_string(h.n_kv_heads) + ", vocab_size " + std::to_string(h.vocab_size) +
                ", seq_len " + std::to_string(h.seq_len) + ") implies " +
                (overflow ? std::string("an impossible size") : std::to_string(expected)) +
                " bytes");
  }

  // The mapping is page aligned and the header 28 bytes: every float is 4-byte aligned.
  const float* cursor = reinterpret_cast<const float*>(file->data() + kHeaderBytes);
  auto take = [&](uint64_t count) {
    const float* p = cursor;
    cursor += count;
    return p;
  };
  const float* embedding = take(V * D);
  const float* rms_att = take(L * D);
  const float* wq = take(L * D * D);
  const float* wk = take(L * KV * D);
  const float* wv = take(L * KV * D);
  const float* wo = take(L * D * D);
  const float* rms_ffn = take(L * D);
  const float* w1 = take(L * F * D);
  const float* w2 = take(L * D * F);
  const float* w3 = take(L * F * D);
  const float* rms_final = take(D);
  take(2 * S * (HD / 2));
  const float* wcls = c.tied_head ? embedding : take(V * D);

  m.storage.push_back(file);
  m.token_embedding = embedding;
  m.layers.resize(c.n_layers);
  for (uint64_t l = 0; l < L; ++l) {
    LayerWeights& layer = m.layers[l];
    layer.attn_norm = {rms_att + l * D, nullptr};

    float* qkv = m.allocate(c.qkv_dim() * D);
    copy_rotary_rows(wq + l * D * D, c.n_heads, c.head_dim, c.dim, qkv);
    copy_rotary_rows(wk + l * KV * D, c.n_kv_heads, c.head_dim, c.dim, qkv + D * D);
    std::memcpy(qkv + (D + KV) * D, wv + l * KV * D, KV * D * sizeof(float));
    layer.qkv = {qkv, nullptr, c.dim, c.qkv_dim(), false};
    layer.attn_out = {wo + l * D * D, nullptr, c.dim, c.dim, false};

    layer.mlp_norm = {rms_ffn + l * D, nullptr};
    float* mlp_in = m.allocate(2 * F * D);  // rows: gate (w1), then up (w3)
    std::memcpy(mlp_in, w1 + l * F * D, F * D * sizeof(float));
    std::memcpy(mlp_in + F * D, w3 + l * F * D, F * D * sizeof(float));
    layer.mlp_in = {mlp_in, nullptr, c.dim, 2 * c.ffn_dim, false};
    layer.mlp_out = {w2 + l * D * F, nullptr, c.ffn_dim, c.dim, false};
  }
  m.final_norm = {rms_final, nullptr};
  m.head = {wcls, nullptr, c.dim, c.vocab_size, false};
  return m;
}

}  // namespace ph
