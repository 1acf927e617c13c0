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
// all at once. A classifier (SEQ_CLS) scores each sequence's last row instead
// (last_token_head.h).
//
// Positions. Rotary models rotate q and k by the rows' positions; ALiBi models add a
// per-head distance bias to every score (prefix keys at positions 0..n-1, as PEFT's
// extended mask gives them).
#include <algorithm>
#include <cmath>
#include <string>

#include <xtensor/xview.hpp>

#include "models/common/error.h"
#include "models/engine/alibi.h"
#include "models/engine/embedding.h"
#include "models/engine/engine.h"
#include "models/engine/last_token_head.h"
#include "models/engine/linear.h"
#include "models/engine/parallel.h"
#include "models/engine/pass_common.h"
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
  float weight;  // Sequence::label_weights (1 when it has none)
};

void check_injection(const ModelConfig& c, const Injection& inj) {
  check_injection_shapes(c, inj);
  if (!inj.head.empty() && c.task != TaskType::kSeqCls)
    throw Error(std::string("injection: a classification head, but the model is ") +
                task_type_name(c.task) + " (its config.json's architectures)");
}

// Distillation targets: one per token, ids in the vocabulary with one finite
// probability in [0, 1] each.
void check_soft_targets(const ModelConfig& c, const Sequence& s, const std::string& where) {
  if (s.soft_targets.empty()) return;
  if (c.task != TaskType::kCausalLm)
    throw Error(where + "has distillation targets, but the model is " + task_type_name(c.task));
  if (s.soft_targets.size() != s.tokens.size())
    throw Error(where + std::to_string(s.soft_targets.size()) + " distillation targets for " +
                std::to_string(s.tokens.size()) + " tokens");
  for (size_t t = 0; t < s.soft_targets.size(); ++t) {
    const SoftTarget& st = s.soft_targets[t];
    const std::string at = where + "distillation target at position " + std::to_string(t) + ": ";
    if (st.ids.size() != st.probs.size())
      throw Error(at + std::to_string(st.ids.size()) + " ids for " +
                  std::to_string(st.probs.size()) + " probabilities");
    if (t == 0 && !st.ids.empty()) throw Error(at + "nothing predicts the first token");
    for (size_t i = 0; i < st.ids.size(); ++i) {
      if (st.ids[i] < 0 || st.ids[i] >= c.vocab_size)
        throw Error(at + "id " + std::to_string(st.ids[i]) + " is outside the vocabulary of " +
                    std::to_string(c.vocab_size));
      if (!(st.probs[i] >= 0.0f && st.probs[i] <= 1.0f))
        throw Error(at + "probability " + std::to_string(st.probs[i]) + " is not in [0, 1]");
    }
  }
}

bool has_soft_targets(const std::vector<Sequence>& batch) {
  for (const Sequence& s : batch)
    if (!s.soft_targets.empty()) return true;
  return false;
}

void check_sequence(const ModelConfig& c, const Injection& inj, const Sequence& s, size_t b,
                    int n_prefix) {
  const std::string where = "batch sequence " + std::to_string(b) + ": ";
  if (c.task == TaskType::kSeqCls) {
    if (!s.labels.empty())
      throw Error(where + "has token labels, but a SEQ_CLS model scores its class_label");
    if (s.tokens.empty()) throw Error(where + "has no tokens to classify");
    if (s.class_label != kIgnoreLabel && (s.class_label < 0 || s.class_label >= c.num_labels()))
      throw Error(where + "class " + std::to_string(s.class_label) + " is outside the model's " +
                  std::to_string(c.num_labels()) + " classes");
  }
  if (!s.labels.empty() && s.labels.size() != s.tokens.size())
    throw Error(where + std::to_string(s.labels.size()) + " labels for " +
                std::to_string(s.tokens.size()) + " tokens");
  if (n_prefix + (long)s.tokens.size() > c.max_positions)
    throw Error(where + "length " + std::to_string(s.tokens.size()) +
                (n_prefix ? " plus a prefix of " + std::to_string(n_prefix) : std::string()) +
                " exceeds the model's context of " + std::to_string(c.max_positions));
  check_tokens(c, inj, s.tokens, b, where);
  if (!s.label_weights.empty() && s.label_weights.size() != s.labels.size())
    throw Error(where + std::to_string(s.label_weights.size()) + " label weights for " +
                std::to_string(s.labels.size()) + " labels");
  for (size_t t = 0; t < s.label_weights.size(); ++t)
    if (!std::isfinite(s.label_weights[t]) || s.label_weights[t] < 0)
      throw Error(where + "label weight " + std::to_string(s.label_weights[t]) + " at position " +
                  std::to_string(t) + " is not a finite number >= 0");
  check_soft_targets(c, s, where);
  for (size_t t = 0; t < s.labels.size(); ++t) {
    const int32_t l = s.labels[t];
    if (l != kIgnoreLabel && (l < 0 || l >= c.vocab_size))
      throw Error(where + "label " + std::to_string(l) + " at position " + std::to_string(t) +
                  " is outside the vocabulary of " + std::to_string(c.vocab_size));
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
  int loss_count() const override;
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
  AlibiTable alibi;
  std::vector<TransformerLayer> layers;
  const bool classify;  // SEQ_CLS: the last-token head instead of the LM head

  // the last forward
  BatchLayout layout;
  std::vector<int> seq_row0;       // first own row of each sequence
  std::vector<int> row_example;    // per row: the example it belongs to (-1: shared segment)
  std::vector<int32_t> row_token;  // per row: token id or virtual slot
  Injection injection;
  InputNorm input_norm;
  // inputs[l]: input of layer l [rows, dim]; inputs[n_layers]: output of the last layer.
  std::vector<xt::xtensor<float, 2>> inputs;
  std::vector<LayerActivations> acts;  // per layer; with recompute, one reused by all
  LayerScratch scratch;
  xt::xtensor<float, 2> dy, dx;  // backward's running gradient
  std::vector<Score> scores;
  int distilled_sequences = 0;  // distillation: the sequences with soft targets, else 0
  xt::xtensor<float, 1> final_mean, final_rstd;  // final norm stats of scored rows
  xt::xtensor<float, 2> d_final;  // d loss / d final-normed scored rows [scored, dim]
  std::vector<double> row_nll;    // per scored row, in the order of `scores`
  LastTokenHead cls_head;         // classify: the last forward's head
  // head_chunks' buffers
  xt::xtensor<float, 2> head_gathered, head_normed, head_logits;
  std::vector<xt::xtensor<float, 2>> logits;
  std::vector<double> sequence_nll;
  std::vector<int> sequence_scored;
  bool have_forward = false;

  State(const Model& m, PassOptions o)
      : model(m), options(o), classify(m.config.task == TaskType::kSeqCls) {
    if (classify && m.config.classifier != ClassifierHead::kLastToken)
      throw Error(std::string("a SEQ_CLS ") + arch_name(m.config.arch) +
                  " decoder needs the last-token classification head");
    for (int l = 0; l < m.config.n_layers; ++l) layers.emplace_back(m, l, rope);
  }

  int n_prefix() const { return injection.prefix.size() ? (int)injection.prefix.shape(3) : 0; }

  // Layer l's gated adapter attention, or null.
  const AdapterBranch* adapter(const std::vector<AdapterBranch>& branches, int l) const {
    return branches[l].len > 0 ? &branches[l] : nullptr;
  }

  // This layer's learned prefix as an attention span (with gradient buffers if given).
  std::vector<KVSpan> external_spans(int l, InjectionGrad* grad) {
    return prefix_spans(model.config, injection.prefix, l, grad ? &grad->prefix : nullptr);
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

  // Causal LM: the loss over the labelled tokens, and (all_logits) every real row's logits.
  double score_tokens(const std::vector<Sequence>& batch) {
    const int D = model.config.dim, V = model.config.vocab_size;
    std::vector<int> rows;
    for (size_t b = 0; b < batch.size(); ++b) {
      const auto& labels = batch[b].labels;
      const auto& weights = batch[b].label_weights;
      for (size_t t = 1; t < labels.size(); ++t)
        if (labels[t] != kIgnoreLabel)
          scores.push_back(
              {predicting_row(b, t), labels[t], (int)b, weights.empty() ? 1.0f : weights[t]});
    }
    for (const Score& s : scores) rows.push_back(s.row);
    const size_t N = scores.size();

    // loss = sum(w * CE) / N and d loss / d (final-normed rows): w (softmax(logits) -
    // onehot) / N, turned into the rows' gradient chunk by chunk
    final_mean.resize({N});
    final_rstd.resize({N});
    d_final.resize({N, (size_t)D});
    row_nll.resize(N);
    head_chunks(rows, final_mean.data(), final_rstd.data(), d_final.data(),
                [&](size_t i, float* logit) {
                  const float target_logit = logit[scores[i].target];
                  const float lse = softmax_inplace(V, logit);
                  row_nll[i] = scores[i].weight * ((double)lse - target_logit);
                  const float inv_n = scores[i].weight / N;
#pragma omp simd
                  for (int v = 0; v < V; ++v) logit[v] *= inv_n;
                  logit[scores[i].target] -= inv_n;
                });
    double loss = 0.0;  // summed in row order: the same for any thread count
    for (size_t i = 0; i < N; ++i) {
      loss += row_nll[i];
      sequence_nll[scores[i].sequence] += row_nll[i];
      sequence_scored[scores[i].sequence] += 1;
    }
    append_all_logits(batch);
    return N ? loss / N : 0.0;
  }

  // With options.all_logits: every real row's logits (virtual rows' too with
  // options.virtual_logits), per sequence.
  void append_all_logits(const std::vector<Sequence>& batch) {
    if (!options.all_logits) return;
    const int V = model.config.vocab_size;
    for (size_t b = 0; b < batch.size(); ++b) {
      std::vector<int> real;
      for (size_t t = 0; t < batch[b].tokens.size(); ++t)
        if (options.virtual_logits || !is_virtual(batch[b].tokens[t]))
          real.push_back(predicting_row(b, t + 1));
      xt::xtensor<float, 2> out = xt::empty<float>({real.size(), (size_t)V});
      head_chunks(real, nullptr, nullptr, nullptr,
                  [&](size_t i, float* logit) { std::copy_n(logit, V, &out(i, 0)); });
      logits.push_back(std::move(out));
    }
  }

  // Distillation (Sequence::soft_targets): position i of sequence b costs
  // -sum_j p_j log q_j (q = softmax(logits)) with weight 1 / (n_b * R), n_b the sequence's
  // scored positions and R the sequences with any; its gradient by the logits is
  // weight * (sum_j p_j * q - p). The target of score i is its index into `targets`.
  double score_soft_targets(const std::vector<Sequence>& batch) {
    const int D = model.config.dim, V = model.config.vocab_size;
    std::vector<const SoftTarget*> targets;
    std::vector<int> rows, scored_in(batch.size(), 0);
    int with_targets = 0;
    for (size_t b = 0; b < batch.size(); ++b) {
      const auto& soft = batch[b].soft_targets;
      for (size_t t = 1; t < soft.size(); ++t)
        if (!soft[t].ids.empty()) {
          scores.push_back({predicting_row(b, t), (int)targets.size(), (int)b, 1.0f});
          targets.push_back(&soft[t]);
          ++scored_in[b];
        }
      with_targets += scored_in[b] > 0;
    }
    distilled_sequences = with_targets;
    for (const Score& s : scores) rows.push_back(s.row);
    const size_t N = scores.size();
    std::vector<float> weight(N);
    for (size_t i = 0; i < N; ++i)
      weight[i] = 1.0f / ((float)scored_in[scores[i].sequence] * (float)with_targets);
    final_mean.resize({N});
    final_rstd.resize({N});
    d_final.resize({N, (size_t)D});
    row_nll.resize(N);
    head_chunks(rows, final_mean.data(), final_rstd.data(), d_final.data(),
                [&](size_t i, float* logit) {
                  const SoftTarget& st = *targets[scores[i].target];
                  std::vector<float> target_logit(st.ids.size());
                  for (size_t j = 0; j < st.ids.size(); ++j) target_logit[j] = logit[st.ids[j]];
                  const float lse = softmax_inplace(V, logit);
                  double cost = 0.0, mass = 0.0;
                  for (size_t j = 0; j < st.ids.size(); ++j) {
                    cost -= (double)st.probs[j] * ((double)target_logit[j] - lse);
                    mass += st.probs[j];
                  }
                  row_nll[i] = cost;
                  const float scale = weight[i] * (float)mass;
#pragma omp simd
                  for (int v = 0; v < V; ++v) logit[v] *= scale;
                  for (size_t j = 0; j < st.ids.size(); ++j)
                    logit[st.ids[j]] -= weight[i] * st.probs[j];
                });
    double loss = 0.0;  // summed in row order: the same for any thread count
    for (size_t i = 0; i < N; ++i) {
      loss += weight[i] * row_nll[i];
      sequence_nll[scores[i].sequence] += row_nll[i];
      sequence_scored[scores[i].sequence] += 1;
    }
    append_all_logits(batch);
    return loss;
  }

  // SEQ_CLS: the classification head at each sequence's last row (its last real token).
  double classify_batch(const std::vector<Sequence>& batch) {
    std::vector<int> rows;
    std::vector<int32_t> labels;
    for (size_t b = 0; b < batch.size(); ++b) {
      rows.push_back(predicting_row(b, batch[b].tokens.size()));
      labels.push_back(batch[b].class_label);
    }
    const double loss = cls_head.forward(model, injection.head, inputs.back(), rows, labels);
    for (size_t b = 0; b < batch.size(); ++b) {
      sequence_nll[b] = cls_head.nll()[b];
      sequence_scored[b] = labels[b] != kIgnoreLabel;
      if (options.all_logits)
        logits.push_back(xt::view(cls_head.logits(), xt::range(b, b + 1), xt::all()));
    }
    return loss;
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
  return state_->classify ? state_->cls_head.scored() : (int)state_->scores.size();
}

int DecoderPass::loss_count() const {
  return state_->distilled_sequences > 0 ? state_->distilled_sequences : scored_count();
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
  const int D = c.dim;
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
  // The position tables cover the positions in use, not the whole context (which may be
  // millions of positions long).
  const int positions =
      R > 0 ? *std::max_element(st.layout.positions.begin(), st.layout.positions.end()) + 1 : 0;
  if (c.rotary_positions() && R > 0) st.rope.ensure(positions, c.head_dim, c.rope_theta);
  if (c.alibi_positions() && R > 0) st.layout.bias = st.alibi.ensure(c.n_heads, positions);

  // input rows
  st.inputs.resize(c.n_layers + 1);
  st.acts.resize(st.options.recompute ? 1 : c.n_layers);
  xt::xtensor<float, 2>& x = st.inputs[0];
  x.resize({(size_t)R, (size_t)D});
  parallel_for(R, D, [&](long r0, long r1) {
    for (long r = r0; r < r1; ++r)
      embed_row(model, st.row_token[r], st.virtual_row(r), st.layout.positions[r], &x(r, 0));
  });
  st.input_norm.forward(model, x);

  // layers; with recompute, one set of activation buffers is reused by every layer
  const std::vector<AdapterBranch> branches = adapter_branches(c, st.injection, nullptr);
  for (int l = 0; l < c.n_layers; ++l)
    st.layers[l].forward(st.layout, st.external_spans(l, nullptr), st.inputs[l],
                         st.acts[st.options.recompute ? 0 : l], st.inputs[l + 1], st.scratch,
                         st.adapter(branches, l));

  st.distilled_sequences = 0;
  const double loss = st.classify               ? st.classify_batch(batch)
                      : has_soft_targets(batch) ? st.score_soft_targets(batch)
                                                : st.score_tokens(batch);
  st.have_forward = true;
  return loss;
}

void DecoderPass::backward(InjectionGrad& grad) {
  State& st = *state_;
  if (!st.have_forward) throw Error("TrainingPass::backward called without a successful forward");
  const Model& model = st.model;
  const ModelConfig& c = model.config;
  const int D = c.dim, R = st.layout.rows;
  grad.virtual_tokens = xt::zeros<float>(st.injection.virtual_tokens.shape());
  grad.prefix = xt::zeros<float>(st.injection.prefix.shape());
  grad.adapter_prompts = xt::zeros<float>(st.injection.adapter_prompts.shape());
  grad.adapter_gates = xt::zeros<float>(st.injection.adapter_gates.shape());
  grad.head.clear();
  const std::vector<AdapterBranch> branches = adapter_branches(c, st.injection, &grad);

  // final norm: d final-normed scored rows -> d last layer output, scattered to their rows
  // (a classifier: its head's gradient, and its rows')
  xt::xtensor<float, 2>& dy = st.dy;
  dy.resize({(size_t)R, (size_t)D});
  std::fill(dy.begin(), dy.end(), 0.0f);
  const size_t N = st.scores.size();
  if (st.classify) st.cls_head.backward(model, dy, grad.head);
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
                           st.scratch, st.adapter(branches, l));
    st.layers[l].backward(st.layout, st.external_spans(l, &grad), st.inputs[l], a, dy, dx,
                          st.scratch, st.adapter(branches, l));
    std::swap(dx, dy);
  }

  // dy is now d loss / d input rows: through the embedding norm and scale, the virtual
  // rows' share goes to the injection
  st.input_norm.backward(model, dy);
  for (int r = 0; r < R; ++r) {
    const int32_t tok = st.row_token[r];
    if (!is_virtual(tok)) continue;
    const int set = st.injection.virtual_tokens.shape(0) == 1 ? 0 : st.row_example[r];
    embed_row_backward(model, &dy(r, 0), &grad.virtual_tokens(set, virtual_index(tok), 0));
  }
}

std::unique_ptr<PassImpl> make_decoder_pass(const Model& model, PassOptions options) {
  return std::make_unique<DecoderPass>(model, options);
}

}  // namespace ph
