#include "models/loader/llama2c.h"

#include <cstdint>
#include <cstring>
#include <vector>

#include "models/common/error.h"
#include "models/common/mapped_file.h"

namespace ph {

namespace {

// The three layouts llama2.c's export.py writes (run.c reads version 0, runq.c version 2):
//  version 0 (legacy_export): 7 int32 (vocab_size negative when a separate classifier
//    follows), then float32: embedding, the per-layer tensors, the final norm, two rotary
//    tables (unused: the engine computes its own), the classifier.
//  version 1 (version1_export): uint32 magic "ak42", int32 version, the 7 int32, a uint8
//    shared_classifier, zeros up to 256 bytes; then float32: the norms first, then the
//    embedding, the per-layer matrices and the classifier. No rotary tables.
//  version 2 (version2_export): version 1's header with an int32 group_size after the flag;
//    the norms float32, then each matrix (each layer's apart) quantised Q8_0: its int8
//    values, then one float32 scale per group of group_size values.
constexpr uint32_t kMagic = 0x616b3432;  // "ak42" as llama2.c writes it (little-endian)
constexpr size_t kLegacyHeaderBytes = 7 * sizeof(int32_t);
constexpr size_t kVersionedHeaderBytes = 256;
constexpr size_t kParamsOffset = 8;      // after magic and version
constexpr size_t kSharedOffset = 36;     // the uint8 after the 7 params
constexpr size_t kGroupSizeOffset = 37;  // version 2: int32, unaligned
const char* const kSupported =
    "PromptHost reads llama2.c versions 0 (legacy), 1 (float32) and 2 (int8 Q8_0)";

struct Header {
  int version = 0;
  int dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len;
  bool shared_classifier;  // no separate classifier: the head is the embedding
  int group_size = 0;      // version 2
  size_t bytes = 0;        // where the weights start
};

template <class T>
T read_at(const MappedFile& file, size_t offset) {
  T value;
  std::memcpy(&value, file.data() + offset, sizeof(T));
  return value;
}

void require_size(const MappedFile& file, size_t bytes, const char* what) {
  if (file.size() < bytes) {
    throw Error(file.path() + ": truncated llama2.c checkpoint (" + std::to_string(file.size()) +
                " bytes; " + what + " alone takes " + std::to_string(bytes) + ")");
  }
}

// The 7 params at `offset`, each checked; vocab_size may be negative only in version 0.
void read_params(const MappedFile& file, size_t offset, Header& h) {
  const std::string& path = file.path();
  int32_t v[7];
  std::memcpy(v, file.data() + offset, sizeof(v));
  const char* names[7] = {"dim",        "hidden_dim", "n_layers", "n_heads",
                          "n_kv_heads", "vocab_size", "seq_len"};
  for (size_t i = 0; i < 7; ++i) {
    const bool signed_vocab = i == 5 && h.version == 0;
    const bool ok = signed_vocab ? v[i] != 0 && v[i] != INT32_MIN : v[i] > 0;
    if (!ok) {
      throw Error(path + ": bad llama2.c header: " + names[i] + " = " + std::to_string(v[i]));
    }
  }
  h.dim = v[0], h.hidden_dim = v[1], h.n_layers = v[2], h.n_heads = v[3], h.n_kv_heads = v[4];
  h.vocab_size = v[5] > 0 ? v[5] : -v[5];
  h.seq_len = v[6];
  if (h.version == 0) h.shared_classifier = v[5] > 0;
  if (h.dim % h.n_heads != 0) {
    throw Error(path + ": bad llama2.c header: dim (" + std::to_string(h.dim) +
                ") is not divisible by n_heads (" + std::to_string(h.n_heads) + ")");
  }
  if (h.n_heads % h.n_kv_heads != 0) {
    throw Error(path + ": bad llama2.c header: n_heads (" + std::to_string(h.n_heads) +
                ") is not divisible by n_kv_heads (" + std::to_string(h.n_kv_heads) + ")");
  }
}

Header read_header(const MappedFile& file) {
  const std::string& path = file.path();
  require_size(file, kLegacyHeaderBytes, "the header");
  Header h;
  if (read_at<uint32_t>(file, 0) != kMagic) {  // version 0 has no magic: it starts with dim
    read_params(file, 0, h);
    h.bytes = kLegacyHeaderBytes;
    return h;
  }
  require_size(file, kVersionedHeaderBytes, "the versioned header");
  h.version = read_at<int32_t>(file, 4);
  if (h.version != 1 && h.version != 2) {
    throw Error(path + ": llama2.c checkpoint version " + std::to_string(h.version) +
                " is not supported (" + kSupported + ")");
  }
  read_params(file, kParamsOffset, h);
  const uint8_t shared = file.data()[kSharedOffset];
  if (shared > 1) {
    throw Error(path + ": bad llama2.c header: shared_classifier = " + std::to_string(shared) +
                " (0 or 1)");
  }
  h.shared_classifier = shared == 1;
  if (h.version == 2) {
    h.group_size = read_at<int32_t>(file, kGroupSizeOffset);
    if (h.group_size <= 0) {
      throw Error(path + ": bad llama2.c header: group_size = " + std::to_string(h.group_size));
    }
  }
  h.bytes = kVersionedHeaderBytes;
  return h;
}

// Where the loader keeps each tensor's float values (see SpanReader).
struct FileWeights {
  const float *embedding = nullptr, *rms_att = nullptr, *rms_ffn = nullptr, *rms_final = nullptr,
              *wq = nullptr, *wk = nullptr, *wv = nullptr, *wo = nullptr, *w1 = nullptr,
              *w2 = nullptr, *w3 = nullptr, *wcls = nullptr;
};

// One tensor of the file: `items` arrays (one per layer, or one) of `numel` values each,
// read into `*into` (nullptr: skipped). Quantised ones (version 2 matrices) store each
// item as numel int8 values followed by numel / group_size float32 scales.
struct Span {
  const char* name;
  uint64_t items;
  uint64_t numel;
  bool quantised;
  const float** into;
};

// The tensors of the file in their order. llama2.c's heads are dim / n_heads wide, so
// the query width is dim.
std::vector<Span> file_layout(const Header& h, const ModelConfig& c, FileWeights& w) {
  const uint64_t D = c.dim, F = c.ffn_dim, L = c.n_layers, V = c.vocab_size;
  const uint64_t KV = c.kv_dim(), S = c.max_positions, HD = c.head_dim;
  const bool q = h.version == 2;
  const Span emb{"embedding", 1, V * D, q, &w.embedding},
      rms_att{"rms_att", L, D, false, &w.rms_att}, rms_ffn{"rms_ffn", L, D, false, &w.rms_ffn},
      rms_final{"rms_final", 1, D, false, &w.rms_final}, wq{"wq", L, D * D, q, &w.wq},
      wk{"wk", L, KV * D, q, &w.wk}, wv{"wv", L, KV * D, q, &w.wv}, wo{"wo", L, D * D, q, &w.wo},
      w1{"w1", L, F * D, q, &w.w1}, w2{"w2", L, D * F, q, &w.w2}, w3{"w3", L, F * D, q, &w.w3},
      wcls{"wcls", 1, V * D, q, &w.wcls};
  // Version 0's freq_cis_real and freq_cis_imag, [seq_len, head_dim / 2] each, are
  // skipped: the engine computes its own rotary table.
  const Span freq_cis{"freq_cis", 2, S * (HD / 2), false, nullptr};
  std::vector<Span> spans =
      h.version == 0
          ? std::vector<Span>{emb,     rms_att, wq, wk, wv,        wo,
                              rms_ffn, w1,      w2, w3, rms_final, freq_cis}
          : std::vector<Span>{rms_att, rms_ffn, rms_final, emb, wq, wk, wv, wo, w1, w2, w3};
  if (!c.tied_head) spans.push_back(wcls);
  return spans;
}

// Bytes a span takes; false on overflow. The header is untrusted: its products are
// checked even though validate_config's limits keep them far below 2^64.
bool span_bytes(const Span& s, uint64_t group_size, uint64_t& bytes) {
  uint64_t per_item = 0;
  if (!s.quantised) {
    if (__builtin_mul_overflow(s.numel, uint64_t{4}, &per_item)) return false;
  } else if (__builtin_add_overflow(s.numel, s.numel / group_size * 4, &per_item)) {
    return false;
  }
  return !__builtin_mul_overflow(per_item, s.items, &bytes);
}

std::string header_text(const Header& h) {
  return "version " + std::to_string(h.version) + ", dim " + std::to_string(h.dim) +
         ", hidden_dim " + std::to_string(h.hidden_dim) + ", n_layers " +
         std::to_string(h.n_layers) + ", n_heads " + std::to_string(h.n_heads) + ", n_kv_heads " +
         std::to_string(h.n_kv_heads) + ", vocab_size " + std::to_string(h.vocab_size) +
         ", seq_len " + std::to_string(h.seq_len) +
         (h.version == 2 ? ", group_size " + std::to_string(h.group_size) : std::string());
}

// The file must be exactly the size its header implies, checked before anything is
// allocated from the header's sizes.
void check_file_size(const MappedFile& file, const Header& h, const std::vector<Span>& spans) {
  uint64_t expected = h.bytes;
  bool overflow = false;
  for (const Span& s : spans) {
    if (s.quantised && s.numel % h.group_size != 0) {
      throw Error(file.path() + ": bad llama2.c header: " + s.name + " has " +
                  std::to_string(s.numel) + " values per " + (s.items > 1 ? "layer" : "tensor") +
                  ", not a multiple of group_size " + std::to_string(h.group_size));
    }
    uint64_t bytes = 0;
    overflow |=
        !span_bytes(s, h.group_size, bytes) || __builtin_add_overflow(expected, bytes, &expected);
  }
  if (overflow || expected != file.size()) {
    throw Error(file.path() + ": llama2.c checkpoint is " + std::to_string(file.size()) +
                " bytes but its header (" + header_text(h) + ") implies " +
                (overflow ? std::string("an impossible size") : std::to_string(expected)) +
                " bytes");
  }
}

// The float values of each span in file order: views into the mapping for float32 spans,
// dequantised copies (value = int8 * its group's scale, as runq.c computes) for Q8_0 ones.
class SpanReader {
 public:
  SpanReader(const MappedFile& file, const Header& h, Model& model)
      : file_(file), group_(h.group_size), model_(model), offset_(h.bytes) {}

  const float* next(const Span& s) {
    if (!s.quantised) {
      // Every float offset is a multiple of 4 from a page-aligned mapping: the headers
      // are 28 and 256 bytes and version 2's int8 spans precede no float32 span.
      const float* p = reinterpret_cast<const float*>(file_.data() + offset_);
      offset_ += s.items * s.numel * 4;
      return p;
    }
    float* out = model_.allocate(s.items * s.numel);
    for (uint64_t i = 0; i < s.items; ++i) dequantise(s.numel, out + i * s.numel);
    return out;
  }

 private:
  void dequantise(uint64_t numel, float* out) {
    const int8_t* values = reinterpret_cast<const int8_t*>(file_.data() + offset_);
    const uint8_t* scales = file_.data() + offset_ + numel;  // float32s, maybe unaligned
    for (uint64_t g = 0; g < numel / group_; ++g) {
      float scale;
      std::memcpy(&scale, scales + g * 4, 4);
      for (uint64_t j = g * group_; j < (g + 1) * group_; ++j) out[j] = values[j] * scale;
    }
    offset_ += numel + numel / group_ * 4;
  }

  const MappedFile& file_;
  uint64_t group_;
  Model& model_;
  uint64_t offset_;
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

ModelConfig config_of(const Header& h, const std::string& path) {
  ModelConfig c;
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
  c.bos_ends_text = true;  // BOS separates the texts it was trained on; run.c stops there
  validate_config(c, path);
  return c;
}

}  // namespace

Model load_llama2c(const std::string& path) {
  auto file = std::make_shared<MappedFile>(path);
  const Header h = read_header(*file);
  Model m;
  m.config = config_of(h, path);
  const ModelConfig& c = m.config;
  FileWeights w;
  const std::vector<Span> spans = file_layout(h, c, w);
  check_file_size(*file, h, spans);

  m.storage.push_back(file);
  SpanReader reader(*file, h, m);
  for (const Span& s : spans) {
    const float* values = reader.next(s);
    if (s.into) *s.into = values;
  }
  const uint64_t D = c.dim, F = c.ffn_dim, L = c.n_layers, KV = c.kv_dim();
  m.token_embedding = w.embedding;
  m.layers.resize(c.n_layers);
  for (uint64_t l = 0; l < L; ++l) {
    LayerWeights& layer = m.layers[l];
    layer.attn_norm = {w.rms_att + l * D, nullptr};

    float* qkv = m.allocate(c.qkv_dim() * D);
    copy_rotary_rows(w.wq + l * D * D, c.n_heads, c.head_dim, c.dim, qkv);
    copy_rotary_rows(w.wk + l * KV * D, c.n_kv_heads, c.head_dim, c.dim, qkv + D * D);
    std::memcpy(qkv + (D + KV) * D, w.wv + l * KV * D, KV * D * sizeof(float));
    layer.qkv = {qkv, nullptr, c.dim, c.qkv_dim(), false};
    layer.attn_out = {w.wo + l * D * D, nullptr, c.dim, c.dim, false};

    layer.mlp_norm = {w.rms_ffn + l * D, nullptr};
    float* mlp_in = m.allocate(2 * F * D);  // rows: gate (w1), then up (w3)
    std::memcpy(mlp_in, w.w1 + l * F * D, F * D * sizeof(float));
    std::memcpy(mlp_in + F * D, w.w3 + l * F * D, F * D * sizeof(float));
    layer.mlp_in = {mlp_in, nullptr, c.dim, 2 * c.ffn_dim, false};
    layer.mlp_out = {w.w2 + l * D * F, nullptr, c.ffn_dim, c.dim, false};
  }
  m.final_norm = {w.rms_final, nullptr};
  m.head = {c.tied_head ? w.embedding : w.wcls, nullptr, c.dim, c.vocab_size, false};
  return m;
}

}  // namespace ph
