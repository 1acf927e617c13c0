#include "models/loader/random_model.h"

#include <cmath>

namespace ph {

namespace {

// splitmix64 + Box-Muller: portable, reproducible normal draws.
class Normal {
 public:
  explicit Normal(uint64_t seed) : state_(seed) {}
  float operator()(float mean, float std) {
    const double u1 = (next() >> 11) * 0x1.0p-53 + 0x1.0p-54;  // (0, 1)
    const double u2 = (next() >> 11) * 0x1.0p-53;
    return (float)(mean + std * std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2));
  }

 private:
  uint64_t next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  uint64_t state_;
};

}  // namespace

Model make_random_model(const ModelConfig& config, uint64_t seed) {
  validate_config(config, "random model");
  Model m;
  m.config = config;
  Normal normal(seed);
  auto fill = [&](size_t n, float mean, float std) {
    float* p = m.allocate(n);
    for (size_t i = 0; i < n; ++i) p[i] = normal(mean, std);
    return p;
  };
  const ModelConfig& c = config;
  const size_t D = c.dim, F = c.ffn_dim, V = c.vocab_size;
  const bool gpt2 = c.arch == Arch::kGpt2;
  const bool all_biases = gpt2 || c.arch == Arch::kBloom;  // every projection has one
  const bool biases = all_biases || c.qkv_bias;
  m.token_embedding = fill(V * D, 0.0f, 0.02f);
  if (c.positions == Positions::kLearned)
    m.position_embedding = fill((size_t)c.max_positions * D, 0.0f, 0.01f);
  auto norm = [&]() {
    return Norm{fill(D, 1.0f, 0.1f), c.layer_norm() ? fill(D, 0.0f, 0.02f) : nullptr};
  };
  if (c.embed_norm) m.embed_norm = norm();
  auto linear = [&](int in, int out, bool bias) {
    Linear l;
    l.in = in;
    l.out = out;
    l.in_major = gpt2;  // gpt2 keeps Conv1D's [in, out] layout, as its checkpoints do
    l.w = fill((size_t)in * out, 0.0f, 0.02f);
    l.b = bias ? fill(out, 0.0f, 0.02f) : nullptr;
    return l;
  };
  for (int i = 0; i < c.n_layers; ++i) {
    LayerWeights w;
    w.attn_norm = norm();
    w.qkv = linear(D, c.qkv_dim(), biases);
    w.attn_out = linear(c.q_dim(), D, all_biases);
    w.mlp_norm = norm();
    w.mlp_in = linear(D, c.gated_mlp ? 2 * F : F, all_biases);
    w.mlp_out = linear(F, D, all_biases);
    m.layers.push_back(w);
  }
  m.final_norm = norm();
  if (c.tied_head) {
    m.head = Linear{m.token_embedding, nullptr, (int)D, (int)V, false};
  } else {
    m.head = Linear{fill(V * D, 0.0f, 0.02f), nullptr, (int)D, (int)V, false};
  }
  if (c.task == TaskType::kSeqCls && c.classifier == ClassifierHead::kLastToken) {
    xt::xarray<float> score = xt::zeros<float>({(size_t)c.num_labels(), D});
    for (auto& v : score) v = normal(0.0f, 0.02f);
    m.classifier["score.weight"] = std::move(score);
  }
  return m;
}

}  // namespace ph
