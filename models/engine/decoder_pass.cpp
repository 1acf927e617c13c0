// The decoder stack's pass (causal LMs): pack a batch, run the layers, score labelled
// positions, and backpropagate to the injection.
//
// Packing. Sequences are laid row after row. When the injection's virtual tokens are
// shared by the batch and every sequence starts with slots 0..m-1, those m rows are
// identical in every sequence (causal attention: they only see each other and the
// prefix), so they are computed once as a "shared segment" whose keys/values every
// sequence then sees, like a prefix; their gradient gathers every sequence's share.
//
// Loss. The output head runs only on scored rows, in chunks, and the gradient of the
// loss with respect to those rows' final hidden states is formed right away (the loss
// is a mean over a count known in advance), so the [rows, vocab] logits never exist
// all at once.
#include <algorithm>
#include <cmath>
#include <string>

#include "models/common/error.h"
#include "models/engine/embedding.h"
#include "models/engine/engine.h"
#include "models/engine/linear.h"
#include "models/engine/parallel.h"
#include "models/engine/pass_impl.h"
#include "models/engine/transformer_layer.h"

namespace ph {

namespace {

// Rows of logits formed at once. The head's weight matrix (vocab x dim, ~150 MB for
// gpt2) is streamed (and packed by the GEMM) once per chunk in forward and once in
// backward, so the chunk must be large enough to amortise that: 256 rows make a 50 MB
// logits buffer for a 50k vocabulary.
constexpr int kHeadChunk = 256;

// One scored label: the row whose output predicts it, and the target token.
struct Score {
  int row;
  int target;
  int sequence;
};

void check_injection(const ModelConfig& c, const Injection& inj) {
  const auto& pre = inj.prefix;
  if (pre.size() > 0 &&
      (pre.shape(0) != (size_t)c.n_layers || pre.shape(1) != 2 ||
       pre.shape(2) != (size_t)c.n_kv_heads || pre.shape(4) != (size_t)c.head_dim))
    throw Error("injection: key/value prefix has shape [" + std::to_string(pre.shape(0)) + ", " +
                std::to_string(pre.shape(1)) + ", " + std::to_string(pre.shape(2)) + ", n, " +
                std::to_string(pre.shape(4)) + "], the model needs [" + std::to_string(c.n_layers) +
                ", 2, " + std::to_string(c.n_kv_heads) + ", n, " + std::to_string(c.head_dim) +
                "]");
  if (inj.virtual_tokens.size() > 0 && inj.virtual_tokens.shape(2) != (size_t)c.dim)
    throw Error("injection: virtual tokens have width " +
                std::to_string(inj.virtual_tokens.shape(2)) + ", the model's hidden size is " +
                std::to_string(c.dim));
}

void check_sequence(const ModelConfig& c, const Injection& inj, const Sequence& s, size_t b,
                    int n_prefix) {
  const std::string where = "batch sequence " + std::to_string(b) + ": ";
  if (!s.labels.empty() && s.labels.size() != s.tokens.size())
    throw Error(where + std::to_string(s.labels.size()) + " labels for " +
                std::to_string(s.tokens.size()) + " tokens");
  if (n_prefix + (long)s.tokens.size() > c.max_positions)
    throw Error(where + "length " + std::to_string(s.tokens.size()) +
                (n_prefix ? " plus a prefix of " + std::to_string(n_prefix) : std::string()) +
                " exceeds the model's context of " + std::to_string(c.max_positions));
  const size_t sets = inj.virtual_tokens.shape(0);
  const int n_virtual = inj.virtual_tokens.size() ? (int)inj.virtual_tokens.shape(1) : 0;
  for (size_t t = 0; t < s.tokens.size(); ++t) {
    const int32_t tok = s.tokens[t];
    if (is_virtual(tok)) {
      if (virtual_index(tok) >= n_virtual)
        throw Error(where + "virtual slot " + std::to_string(virtual_index(tok)) + " at position " +
                    std::to_string(t) + ", but the injection has " + std::to_string(n_virtual) +
                    " virtual tokens");
      if (sets > 1 && b >= sets)
        throw Error(where + "no per-example virtual tokens for this example (the injection has " +
                    std::to_string(sets) + " sets)");
    } else if (tok >= c.vocab_size) {
      throw Error(where + "token id " + std::to_string(tok) + " at position " + std::to_string(t) +
                  " is outside the vocabulary of " + std::to_string(c.vocab_size));
    }
    if (!s.labels.empty()) {
      const int32_t l = s.labels[t];
      if (l != kIgnoreLabel && (l < 0 || l >= c.vocab_size))
        throw Error(where + "label " + std::to_string(l) + " at position " + std::to_string(t) +
                    " is outside the vocabulary of " + std::to_string(c.vocab_size));
    }
  }
}

// Length of the run of virtual slots 0, 1, 2, ... every sequence starts with.
int shared_virtual_run(const std::vector<Sequence>& batch) {
  size_t run = batch[0].tokens.size();
  for (const auto& s : batch) {
    size_t k = 0;
    while (k < s.tokens.size() && k < run && s.tokens[k] == virtual_slot((int)k)) ++k;
    run = k;
  }
  return (int)run;
}

}  // namespace

class DecoderPass final : public PassImpl {
 public:
  DecoderPass(const Model& model, PassOptions options);
  double forward(const std::vector<Sequence>& batch, const Injection& injection) override;
  void backward(InjectionGrad& grad) override;
  int scored_count() const override;
  double step_flops() const override;
  const std::vector<double>& sequence_nll() const override;
  const std::vector<int>& sequence_scored() const override;
  const std::vector<xt::xtensor<float, 2>>& logits() const override;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

struct DecoderPass::State {
  const Model& model;
  PassOptions options;
  RopeTable rope;
  std::vector<TransformerLayer> layers;

  // the last forward
  BatchLayout layout;
  std::vector<int> seq_row0;       // first own row of each sequence
  std::vector<int> row_example;    // per row: the example it belongs to (-1: shared segment)
  std::vector<int32_t> row_token;  // per row: token id or virtual slot
  Injection injection;
  // inputs[l]: input of layer l [rows, dim]; inputs[n_layers]: output of the last layer.
  std::vector<xt::xtensor<float, 2>> inputs;
  std::vector<LayerActivations> acts;  // per layer; with recompute, one reused by all
  LayerScratch scratch;
  xt::xtensor<float, 2> dy, dx;  // backward's running gradient
  std::vector<Score> scores;
  xt::xtensor<float, 1> final_mean, final_rstd;  // final norm stats of scored rows
  xt::xtensor<float, 2> d_final;  // d loss / d final-normed scored rows [scored, dim]
  std::vector<double> row_nll;    // per scored row, in the order of `scores`
  // head_chunks' buffers
  xt::xtensor<float, 2> head_gathered, head_normed, head_logits;
  std::vector<xt::xtensor<float, 2>> logits;
  std::vector<double> sequence_nll;
  std::vector<int> sequence_scored;
  bool have_forward = false;

  State(const Model& m, PassOptions o) : model(m), options(o) {
    for (int l = 0; l < m.config.n_layers; ++l) layers.emplace_back(m, l, rope);
  }

  int n_prefix() const { return injection.prefix.size() ? (int)injection.prefix.shape(3) : 0; }

  // This layer's learned prefix as an attention span (with gradient buffers if given).
  std::vector<KVSpan> external_spans(int l, InjectionGrad* grad) {
    std::vector<KVSpan> spans;
    const int n = n_prefix();
    if (n == 0) return spans;
    const ModelConfig& c = model.config;
    KVSpan s;
    s.k = &injection.prefix(l, 0, 0, 0, 0);
    s.v = &injection.prefix(l, 1, 0, 0, 0);
    s.n = n;
    s.pos_stride = c.head_dim;
    s.head_stride = (size_t)n * c.head_dim;
    if (grad) {
      s.dk = &grad->prefix(l, 0, 0, 0, 0);
      s.dv = &grad->prefix(l, 1, 0, 0, 0);
    }
    spans.push_back(s);
    return spans;
  }

  void pack(const std::vector<Sequence>& batch) {
    const bool shared = injection.virtual_tokens.size() && injection.virtual_tokens.shape(0) == 1;
    const int m = shared ? shared_virtual_run(batch) : 0;
    const int np = n_prefix();
    layout = BatchLayout{};
    seq_row0.clear();
    row_example.clear();
    row_token.clear();
    if (m > 0) {
      layout.shared_rows = m;
      layout.segments.push_back({0, m, false});
      for (int i = 0; i < m; ++i) {
        layout.positions.push_back(np + i);
        row_example.push_back(-1);
        row_token.push_back(virtual_slot(i));
      }
    }
    for (size_t b = 0; b < batch.size(); ++b) {
      const auto& toks = batch[b].tokens;
      const int row0 = (int)row_token.size();
      seq_row0.push_back(row0);
      layout.segments.push_back({row0, (int)toks.size() - m, m > 0});
      for (size_t t = m; t < toks.size(); ++t) {
        layout.positions.push_back(np + (int)t);
        row_example.push_back((int)b);
        row_token.push_back(toks[t]);
      }
    }
    layout.rows = (int)row_token.size();
  }

  // The row whose output predicts position t of sequence b (t >= 1).
  int predicting_row(size_t b, size_t t) const {
    const int m = layout.shared_rows;
    return (int)t - 1 < m ? (int)t - 1 : seq_row0[b] + (int)t - 1 - m;
  }

  const float* virtual_row(int row) const {
    const int32_t tok = row_token[row];
    if (!is_virtual(tok)) return nullptr;
    const int set = injection.virtual_tokens.shape(0) == 1 ? 0 : row_example[row];
    return &injection.virtual_tokens(set, virtual_index(tok), 0);
  }

  // Final norm and head over `rows`, in chunks; visit(i, logits row) sees each row's
  // logits, rows spread over the threads (so visit must only touch row i's data). With
  // d_normed set, visit turns the logits into d loss / d logits in place and d_normed
  // receives d loss / d (final-normed row) [rows, dim].
  template <class Visit>
  void head_chunks(const std::vector<int>& rows, float* mean, float* rstd, float* d_normed,
                   Visit visit) {
    const ModelConfig& c = model.config;
    const int D = c.dim, V = c.vocab_size;
    const size_t chunk = std::min<size_t>(kHeadChunk, rows.size());
    head_gathered.resize({chunk, (size_t)D});
    head_normed.resize({chunk, (size_t)D});
    head_logits.resize({chunk, (size_t)V});
    float scratch_mean[kHeadChunk], scratch_rstd[kHeadChunk];
    const xt::xtensor<float, 2>& final_x = inputs.back();
    for (size_t i0 = 0; i0 < rows.size(); i0 += kHeadChunk) {
      const int n = (int)std::min<size_t>(kHeadChunk, rows.size() - i0);
      for (int i = 0; i < n; ++i) std::copy_n(&final_x(rows[i0 + i], 0), D, &head_gathered(i, 0));
      norm_forward(model.final_norm, c.norm_eps, n, D, head_gathered.data(), head_normed.data(),
                   mean ? mean + i0 : scratch_mean, rstd ? rstd + i0 : scratch_rstd);
      linear_forward(model.head, n, head_normed.data(), D, head_logits.data(), V);
      parallel_for(n, V, [&](long b, long e) {
        for (long i = b; i < e; ++i) visit(i0 + i, &head_logits(i, 0));
      });
      if (d_normed)
        linear_backward_input(model.head, n, head_logits.data(), V, d_normed + i0 * D, D, false);
    }
  }
};

DecoderPass::DecoderPass(const Model& model, PassOptions options)
    : state_(std::make_unique<State>(model, options)) {}

int DecoderPass::scored_count() const {
  return (int)state_->scores.size();
}

double DecoderPass::step_flops() const {
  const State& st = *state_;
  const ModelConfig& c = st.model.config;
  const double R = st.layout.rows, D = c.dim, F = c.ffn_dim, hd = c.head_dim, H = c.n_heads;
  const double pre_width = c.gated_mlp ? 2 * F : F;
  // projections: forward, and the same GEMMs transposed for the input gradient
  const double proj = 2 * R * (D * c.qkv_dim() + c.q_dim() * D + D * pre_width + F * D);
  // attention, per (segment, head): forward Q Kᵀ and P V over every visible key; backward
  // recomputes Q Kᵀ, then dO Vᵀ, Pᵀ dO, dS K, dSᵀ Q (in training every visible key takes
  // a gradient: own keys, the shared virtual tokens, a learned prefix)
  double attn_fwd = 0, attn_bwd = 0;
  const double n_prefix = st.injection.prefix.size() ? (double)st.injection.prefix.shape(3) : 0;
  for (const Segment& sg : st.layout.segments) {
    const double ctx = n_prefix + (sg.sees_shared ? st.layout.shared_rows : 0);
    const double total = ctx + sg.len;
    attn_fwd += 2 * 2 * sg.len * total * hd * H;
    attn_bwd += (3 * 2 * sg.len * total * hd + 2 * 2 * sg.len * total * hd) * H;
  }
  const double head = 2.0 * st.scores.size() * D * c.vocab_size;  // forward; backward the same
  const double layers = c.n_layers * (2 * proj + attn_fwd + attn_bwd +
                                      (st.options.recompute ? proj / 2 + attn_fwd : 0));
  return layers + 2 * head;
}

const std::vector<xt::xtensor<float, 2>>& DecoderPass::logits() const {
  return state_->logits;
}

const std::vector<double>& DecoderPass::sequence_nll() const {
  return state_->sequence_nll;
}

const std::vector<int>& DecoderPass::sequence_scored() const {
  return state_->sequence_scored;
}

double DecoderPass::forward(const std::vector<Sequence>& batch, const Injection& injection) {
  State& st = *state_;
  const Model& model = st.model;
  const ModelConfig& c = model.config;
  const int D = c.dim, V = c.vocab_size;
  st.have_forward = false;
  check_injection(c, injection);
  st.injection = injection;
  for (size_t b = 0; b < batch.size(); ++b)
    check_sequence(c, injection, batch[b], b, st.n_prefix());
  st.scores.clear();
  st.logits.clear();
  st.sequence_nll.assign(batch.size(), 0.0);
  st.sequence_scored.assign(batch.size(), 0);
  if (batch.empty()) return 0.0;
  st.pack(batch);
  const int R = st.layout.rows;
  // The rotary table covers the positions in use, not the whole context (which may be
  // millions of positions long).
  if (c.rotary_positions() && R > 0) {
    const int last = *std::max_element(st.layout.positions.begin(), st.layout.positions.end());
    st.rope.ensure(last + 1, c.head_dim, c.rope_theta);
  }

  // input rows
  st.inputs.resize(c.n_layers + 1);
  st.acts.resize(st.options.recompute ? 1 : c.n_layers);
  xt::xtensor<float, 2>& x = st.inputs[0];
  x.resize({(size_t)R, (size_t)D});
  parallel_for(R, D, [&](long r0, long r1) {
    for (long r = r0; r < r1; ++r)
      embed_row(model, st.row_token[r], st.virtual_row(r), st.layout.positions[r], &x(r, 0));
  });

  // layers; with recompute, one set of activation buffers is reused by every layer
  for (int l = 0; l < c.n_layers; ++l)
    st.layers[l].forward(st.layout, st.external_spans(l, nullptr), st.inputs[l],
                         st.acts[st.options.recompute ? 0 : l], st.inputs[l + 1], st.scratch);

  // labels -> scored rows
  std::vector<int> rows;
  for (size_t b = 0; b < batch.size(); ++b) {
    const auto& labels = batch[b].labels;
    for (size_t t = 1; t < labels.size(); ++t)
      if (labels[t] != kIgnoreLabel)
        st.scores.push_back({st.predicting_row(b, t), labels[t], (int)b});
  }
  for (const Score& s : st.scores) rows.push_back(s.row);
  const size_t N = st.scores.size();

  // loss and d loss / d (final-normed rows): (softmax(logits) - onehot) / N, turned into
  // the rows' gradient chunk by chunk
  st.final_mean.resize({N});
  st.final_rstd.resize({N});
  st.d_final.resize({N, (size_t)D});
  st.row_nll.resize(N);
  st.head_chunks(rows, st.final_mean.data(), st.final_rstd.data(), st.d_final.data(),
                 [&](size_t i, float* logit) {
                   const float target_logit = logit[st.scores[i].target];
                   const float lse = softmax_inplace(V, logit);
                   st.row_nll[i] = (double)lse - target_logit;
                   const float inv_n = 1.0f / N;
#pragma omp simd
                   for (int v = 0; v < V; ++v) logit[v] *= inv_n;
                   logit[st.scores[i].target] -= inv_n;
                 });
  double loss = 0.0;  // summed in row order: the same for any thread count
  for (size_t i = 0; i < N; ++i) {
    loss += st.row_nll[i];
    st.sequence_nll[st.scores[i].sequence] += st.row_nll[i];
    st.sequence_scored[st.scores[i].sequence] += 1;
  }

  if (st.options.all_logits) {
    for (size_t b = 0; b < batch.size(); ++b) {
      std::vector<int> real;
      for (size_t t = 0; t < batch[b].tokens.size(); ++t)
        if (!is_virtual(batch[b].tokens[t])) real.push_back(st.predicting_row(b, t + 1));
      xt::xtensor<float, 2> out = xt::empty<float>({real.size(), (size_t)V});
      st.head_chunks(real, nullptr, nullptr, nullptr,
                     [&](size_t i, float* logit) { std::copy_n(logit, V, &out(i, 0)); });
      st.logits.push_back(std::move(out));
    }
  }
  st.have_forward = true;
  return N ? loss / N : 0.0;
}

void DecoderPass::backward(InjectionGrad& grad) {
  State& st = *state_;
  if (!st.have_forward) throw Error("TrainingPass::backward called without a successful forward");
  const Model& model = st.model;
  const ModelConfig& c = model.config;
  const int D = c.dim, R = st.layout.rows;
  grad.virtual_tokens = xt::zeros<float>(st.injection.virtual_tokens.shape());
  grad.prefix = xt::zeros<float>(st.injection.prefix.shape());

  // final norm: d final-normed scored rows -> d last layer output, scattered to their rows
  xt::xtensor<float, 2>& dy = st.dy;
  dy.resize({(size_t)R, (size_t)D});
  std::fill(dy.begin(), dy.end(), 0.0f);
  const size_t N = st.scores.size();
  if (N > 0) {
    xt::xtensor<float, 2> gathered = xt::empty<float>({N, (size_t)D});
    xt::xtensor<float, 2> dg = xt::empty<float>({N, (size_t)D});
    for (size_t i = 0; i < N; ++i)
      std::copy_n(&st.inputs.back()(st.scores[i].row, 0), D, &gathered(i, 0));
    norm_backward(model.final_norm, (int)N, D, gathered.data(), st.final_mean.data(),
                  st.final_rstd.data(), st.d_final.data(), dg.data(), false);
    for (size_t i = 0; i < N; ++i) {
      float* d = &dy(st.scores[i].row, 0);
      for (int k = 0; k < D; ++k) d[k] += dg(i, k);
    }
  }

  xt::xtensor<float, 2>& dx = st.dx;
  for (int l = c.n_layers - 1; l >= 0; --l) {
    LayerActivations& a = st.acts[st.options.recompute ? 0 : l];
    if (st.options.recompute)  // rebuild the activations; the output (dx for now) is unused
      st.layers[l].forward(st.layout, st.external_spans(l, nullptr), st.inputs[l], a, dx,
                           st.scratch);
    st.layers[l].backward(st.layout, st.external_spans(l, &grad), st.inputs[l], a, dy, dx,
                          st.scratch);
    std::swap(dx, dy);
  }

  // dy is now d loss / d input rows: the virtual rows' share goes to the injection
  for (int r = 0; r < R; ++r) {
    const int32_t tok = st.row_token[r];
    if (!is_virtual(tok)) continue;
    const int set = st.injection.virtual_tokens.shape(0) == 1 ? 0 : st.row_example[r];
    float* g = &grad.virtual_tokens(set, virtual_index(tok), 0);
    for (int k = 0; k < D; ++k) g[k] += dy(r, k);
  }
}

std::unique_ptr<PassImpl> make_decoder_pass(const Model& model, PassOptions options) {
  return std::make_unique<DecoderPass>(model, options);
}

}  // namespace ph
