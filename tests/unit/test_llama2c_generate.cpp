// llama2.c checkpoints generate as llama2.c's run.c does: greedy decoding gives run.c's
// tokens and stops where run.c stops, at the BOS that starts the next text. The reference
// is an independent forward written here the way run.c computes (interleaved rotary pairs,
// float math, its loop `if (next == 1) break;`), reading the legacy .bin itself; it shares
// no code with the engine.
#include <catch.hpp>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <iterator>

#include "models/common/error.h"
#include "models/engine/model.h"
#include "models/generate/generate.h"
#include "models/tokenizer/tokenizer.h"
#include "test_support.h"

namespace {

constexpr int32_t kBos = 1;  // llama2.c: BOS delimits the texts

// run.c's Transformer on a legacy (version 0) checkpoint with a shared classifier.
class RunC {
 public:
  explicit RunC(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    int32_t h[7];
    in.read(reinterpret_cast<char*>(h), sizeof(h));
    dim_ = h[0], hidden_ = h[1], layers_ = h[2], heads_ = h[3], kv_heads_ = h[4];
    vocab_ = h[5], seq_len_ = h[6];
    REQUIRE(vocab_ > 0);  // shared classifier, as the files read here have
    head_size_ = dim_ / heads_;
    kv_dim_ = kv_heads_ * head_size_;
    weights_.assign(std::istreambuf_iterator<char>(in), {});
    const float* p = reinterpret_cast<const float*>(weights_.data());
    auto take = [&](size_t n) {
      const float* t = p;
      p += n;
      return t;
    };
    const size_t D = dim_, F = hidden_, L = layers_, KV = kv_dim_;
    emb_ = take(vocab_ * D), rms_att_ = take(L * D), wq_ = take(L * D * D);
    wk_ = take(L * KV * D), wv_ = take(L * KV * D), wo_ = take(L * D * D);
    rms_ffn_ = take(L * D), w1_ = take(L * F * D), w2_ = take(L * D * F), w3_ = take(L * F * D);
    rms_final_ = take(D);
    key_cache_.assign(L * seq_len_ * KV, 0.0f);
    value_cache_.assign(L * seq_len_ * KV, 0.0f);
  }

  int seq_len() const { return seq_len_; }

  // run.c's generate at temperature 0: the prompt from position 0, then argmax tokens
  // until BOS or until `steps` positions are used (run.c's -n, at most seq_len). Returns
  // the generated tokens without the BOS that stopped it; `stopped_at_bos` says which.
  std::vector<int32_t> greedy(const std::vector<int32_t>& prompt, int steps, bool& stopped_at_bos) {
    std::vector<int32_t> out;
    stopped_at_bos = false;
    int token = prompt[0];
    for (int pos = 0; pos < steps; ++pos) {
      const std::vector<float> logits = forward(token, pos);
      int next;
      if (pos + 1 < (int)prompt.size()) {
        next = prompt[pos + 1];
      } else {
        next = (int)(std::max_element(logits.begin(), logits.end()) - logits.begin());
        if (next == kBos) {
          stopped_at_bos = true;
          break;
        }
        out.push_back(next);
      }
      token = next;
    }
    return out;
  }

 private:
  static void rmsnorm(float* o, const float* x, const float* w, int n) {
    float ss = 0.0f;
    for (int j = 0; j < n; ++j) ss += x[j] * x[j];
    ss = 1.0f / std::sqrt(ss / n + 1e-5f);
    for (int j = 0; j < n; ++j) o[j] = w[j] * (ss * x[j]);
  }
  static void matmul(float* out, const float* x, const float* w, int n, int d) {
    for (int i = 0; i < d; ++i) {
      float v = 0.0f;
      for (int j = 0; j < n; ++j) v += w[(size_t)i * n + j] * x[j];
      out[i] = v;
    }
  }

  std::vector<float> forward(int token, int pos) {
    const int D = dim_, hs = head_size_, kv_mul = heads_ / kv_heads_;
    std::vector<float> x(emb_ + (size_t)token * D, emb_ + (size_t)(token + 1) * D);
    std::vector<float> xb(D), xb2(D), q(D), hb(hidden_), hb2(hidden_), att(seq_len_);
    for (int l = 0; l < layers_; ++l) {
      rmsnorm(xb.data(), x.data(), rms_att_ + (size_t)l * D, D);
      float* k = &key_cache_[((size_t)l * seq_len_ + pos) * kv_dim_];
      float* v = &value_cache_[((size_t)l * seq_len_ + pos) * kv_dim_];
      matmul(q.data(), xb.data(), wq_ + (size_t)l * D * D, D, D);
      matmul(k, xb.data(), wk_ + (size_t)l * kv_dim_ * D, D, kv_dim_);
      matmul(v, xb.data(), wv_ + (size_t)l * kv_dim_ * D, D, kv_dim_);
      for (int i = 0; i < D; i += 2) {  // rotary on interleaved pairs (i, i + 1)
        const float freq = 1.0f / std::pow(10000.0f, (float)(i % hs) / (float)hs);
        const float fcr = std::cos(pos * freq), fci = std::sin(pos * freq);
        for (float* vec : {q.data(), i < kv_dim_ ? k : nullptr}) {
          if (!vec) continue;
          const float v0 = vec[i], v1 = vec[i + 1];
          vec[i] = v0 * fcr - v1 * fci;
          vec[i + 1] = v0 * fci + v1 * fcr;
        }
      }
      for (int h = 0; h < heads_; ++h) {
        const float* qh = q.data() + h * hs;
        const size_t kv_off = (size_t)(h / kv_mul) * hs;
        for (int t = 0; t <= pos; ++t) {
          const float* kt = &key_cache_[((size_t)l * seq_len_ + t) * kv_dim_ + kv_off];
          float score = 0.0f;
          for (int i = 0; i < hs; ++i) score += qh[i] * kt[i];
          att[t] = score / std::sqrt((float)hs);
        }
        const float top = *std::max_element(att.begin(), att.begin() + pos + 1);
        float sum = 0.0f;
        for (int t = 0; t <= pos; ++t) sum += att[t] = std::exp(att[t] - top);
        float* out = xb.data() + h * hs;
        std::fill(out, out + hs, 0.0f);
        for (int t = 0; t <= pos; ++t) {
          const float* vt = &value_cache_[((size_t)l * seq_len_ + t) * kv_dim_ + kv_off];
          for (int i = 0; i < hs; ++i) out[i] += att[t] / sum * vt[i];
        }
      }
      matmul(xb2.data(), xb.data(), wo_ + (size_t)l * D * D, D, D);
      for (int i = 0; i < D; ++i) x[i] += xb2[i];
      rmsnorm(xb.data(), x.data(), rms_ffn_ + (size_t)l * D, D);
      matmul(hb.data(), xb.data(), w1_ + (size_t)l * hidden_ * D, D, hidden_);
      matmul(hb2.data(), xb.data(), w3_ + (size_t)l * hidden_ * D, D, hidden_);
      for (int i = 0; i < hidden_; ++i) hb[i] = hb[i] / (1.0f + std::exp(-hb[i])) * hb2[i];
      matmul(xb.data(), hb.data(), w2_ + (size_t)l * D * hidden_, hidden_, D);
      for (int i = 0; i < D; ++i) x[i] += xb[i];
    }
    rmsnorm(x.data(), x.data(), rms_final_, D);
    std::vector<float> logits(vocab_);
    matmul(logits.data(), x.data(), emb_, D, vocab_);  // the shared classifier
    return logits;
  }

  int dim_, hidden_, layers_, heads_, kv_heads_, vocab_, seq_len_, head_size_, kv_dim_;
  std::string weights_;
  const float *emb_, *rms_att_, *wq_, *wk_, *wv_, *wo_, *rms_ffn_, *w1_, *w2_, *w3_, *rms_final_;
  std::vector<float> key_cache_, value_cache_;
};

// PromptHost's greedy continuation of `prompt`, with the stops generate uses for the model.
std::vector<int32_t> prompthost_greedy(const ph::Model& model, const ph::Tokenizer& tokenizer,
                                       const std::vector<int32_t>& prompt) {
  ph::GenerateOptions o;
  o.max_new_tokens = model.config.max_positions;  // the context is the limit
  o.sampling.temperature = 0;
  o.stop_ids = ph::stop_ids(model.config, tokenizer.eos_id());
  return ph::generate(model, ph::InjectionCache(), prompt, o);
}

// Greedy text from `prompt` (BOS first) ends where run.c's does: at the model's first BOS.
void check_stops_as_run_c(const std::string& model_path, const std::string& tokenizer_path,
                          const std::string& text) {
  INFO(model_path << ", prompt \"" << text << "\"");
  const ph::Model model = ph::load_model(model_path);
  const auto tokenizer = ph::load_tokenizer(tokenizer_path);
  CHECK(model.config.bos_ends_text);
  std::vector<int32_t> prompt = tokenizer->encode(text);
  prompt.insert(prompt.begin(), kBos);

  RunC run_c(model_path);
  bool at_bos = false;
  const std::vector<int32_t> reference = run_c.greedy(prompt, run_c.seq_len(), at_bos);
  INFO("run.c: " << tokenizer->decode(reference));
  REQUIRE(at_bos);  // the text ends before the context does: the BOS is what stops it
  REQUIRE(reference.size() > 5);

  std::vector<int32_t> expected = reference;
  expected.push_back(kBos);  // generate returns the stop id it produced
  const std::vector<int32_t> got = prompthost_greedy(model, *tokenizer, prompt);
  INFO("PromptHost: " << tokenizer->decode(got));
  CHECK(got == expected);
}

}  // namespace

TEST_CASE("llama2.c: greedy text stops at BOS as run.c does, on the bundled demo .bin",
          "[llama2c]") {
  const std::string demo = ph::test::source_path("models/demo");
  check_stops_as_run_c(demo + "/fortune-llama.bin", demo + "/tokenizer.bin", "");
  check_stops_as_run_c(demo + "/fortune-llama.bin", demo + "/tokenizer.bin", "Q: What is");
}

TEST_CASE("llama2.c: greedy text stops at BOS as run.c does, on the real stories260K",
          "[llama2c]") {
  const std::string dir = ph::test::fixtures_dir() + "/llama2c";
  check_stops_as_run_c(dir + "/stories260K.bin", dir + "/tok512.bin",
                       "Once upon a time, there was a little dog");
}

TEST_CASE("llama2.c: only llama2.c models stop at BOS", "[llama2c]") {
  // The demo's Hugging Face folder is the same network; its texts end at EOS only, as
  // transformers' generate ends them.
  const ph::Model hf = ph::load_model(ph::test::source_path("models/demo/hf"));
  CHECK_FALSE(hf.config.bos_ends_text);
  CHECK(ph::stop_ids(hf.config, 7) == std::vector<int32_t>{2});  // config.json's EOS first
  const ph::Model bin = ph::load_model(ph::test::source_path("models/demo/fortune-llama.bin"));
  CHECK(ph::stop_ids(bin.config, -1) == std::vector<int32_t>{2, kBos});
  ph::ModelConfig none = hf.config;
  none.eos_id = -1;
  CHECK(ph::stop_ids(none, -1).empty());
  CHECK(ph::stop_ids(none, 5) == std::vector<int32_t>{5});  // the tokenizer's EOS
}
