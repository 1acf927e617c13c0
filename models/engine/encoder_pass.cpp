// The encoder stack's pass (SEQ_CLS: bert, roberta): embed each sequence, run the layers
// with every row seeing its whole sequence (and the layer's learned prefix), classify
// each sequence from its first row, and backpropagate to the injection and to the
// classification head's weights.
//
// Input rows: (the token's embedding, or the virtual token's injected vector) + the
// position's embedding + the token type's embedding, then the embedding norm.
// Positions as PEFT feeds encoders (tests/fixtures/hf/README.md, rules 5 and 6): virtual
// tokens are ordinary positions of their sequence (prepended ones take 0..n-1, [CLS]
// follows, and the head reads the first virtual token); a prefix of n keys shifts the
// text to positions n... Positions count from config.position_offset (roberta:
// padding_idx + 1).
//
// Unlike the decoder pass there is no segment of shared virtual tokens: attention is
// bidirectional, so the virtual tokens see the text and their rows differ per sequence.
#include <algorithm>
#include <cmath>
#include <string>

#include "models/common/error.h"
#include "models/engine/embedding.h"
#include "models/engine/encoder_head.h"
#include "models/engine/engine.h"
#include "models/engine/parallel.h"
#include "models/engine/pass_common.h"
#include "models/engine/pass_impl.h"
#include "models/engine/transformer_layer.h"

namespace ph {

namespace {

void check_sequence(const ModelConfig& c, const Injection& inj, const Sequence& s, size_t b,
                    int n_prefix, int classes) {
  const std::string where = "batch sequence " + std::to_string(b) + ": ";
  if (s.tokens.empty()) throw Error(where + "no tokens to classify");
  if (n_prefix + (long)s.tokens.size() > c.max_positions)
    throw Error(where + "length " + std::to_string(s.tokens.size()) +
                (n_prefix ? " plus a prefix of " + std::to_string(n_prefix) : std::string()) +
                " exceeds the model's " + std::to_string(c.max_positions) +
                " positions (max_position_embeddings" +
                (c.position_offset ? " minus the first " + std::to_string(c.position_offset) +
                                         ", which come before the text's"
                                   : std::string()) +
                ")");
  check_tokens(c, inj, s.tokens, b, where);
  if (!s.token_types.empty() && s.token_types.size() != s.tokens.size())
    throw Error(where + std::to_string(s.token_types.size()) + " token types for " +
                std::to_string(s.tokens.size()) + " tokens");
  for (size_t t = 0; t < s.token_types.size(); ++t)
    if (s.token_types[t] < 0 || s.token_types[t] >= c.type_vocab_size)
      throw Error(where + "token type " + std::to_string(s.token_types[t]) + " at position " +
                  std::to_string(t) + " is outside the model's " +
                  std::to_string(c.type_vocab_size) + " token types (type_vocab_size)");
  if (s.class_label != kIgnoreLabel && (s.class_label < 0 || s.class_label >= classes))
    throw Error(where + "class " + std::to_string(s.class_label) + " is outside the head's " +
                std::to_string(classes) + " classes");
}

}  // namespace

class EncoderPass final : public PassImpl {
 public:
  EncoderPass(const Model& model, PassOptions options);
  double forward(const std::vector<Sequence>& batch, const Injection& injection) override;
  void backward(InjectionGrad& grad) override;
  int scored_count() const override { return scored_; }
  double step_flops() const override;
  const std::vector<double>& sequence_nll() const override { return sequence_nll_; }
  const std::vector<int>& sequence_scored() const override { return sequence_scored_; }
  const std::vector<xt::xtensor<float, 2>>& logits() const override { return logits_; }

 private:
  int n_prefix() const { return injection_.prefix.size() ? (int)injection_.prefix.shape(3) : 0; }
  void pack(const std::vector<Sequence>& batch);
  void embed();
  const float* virtual_row(int row) const;
  double classify(const std::vector<Sequence>& batch);

  const Model& model_;
  PassOptions options_;
  RopeTable rope_;  // unused: learned positions
  std::vector<TransformerLayer> layers_;

  // the last forward
  Injection injection_;
  BatchLayout layout_;
  std::vector<int> seq_row0_;       // first row of each sequence (the head reads it)
  std::vector<int> row_example_;    // per row: its sequence
  std::vector<int32_t> row_token_;  // per row: token id or virtual slot
  std::vector<int32_t> row_type_;   // per row: token type
  InputNorm input_norm_;            // the embedding norm over the summed input rows
  // inputs_[l]: input of layer l [rows, dim]; inputs_[n_layers]: the encoder's output
  std::vector<xt::xtensor<float, 2>> inputs_;
  std::vector<LayerActivations> acts_;  // per layer; with recompute, one reused by all
  LayerScratch scratch_;
  xt::xtensor<float, 2> dy_, dx_;  // backward's running gradient
  std::unique_ptr<EncoderHead> head_;
  xt::xtensor<float, 2> h0_, dlogits_;  // first rows' outputs [batch, dim]; d loss / d logits
  int scored_ = 0;
  std::vector<xt::xtensor<float, 2>> logits_;
  std::vector<double> sequence_nll_;
  std::vector<int> sequence_scored_;
  bool have_forward_ = false;
};

EncoderPass::EncoderPass(const Model& model, PassOptions options)
    : model_(model), options_(options) {
  const ModelConfig& c = model.config;
  if (c.task != TaskType::kSeqCls)
    throw Error(std::string("a ") + arch_name(c.arch) + " model is an encoder: it computes " +
                task_type_name(TaskType::kSeqCls) + ", not " + task_type_name(c.task));
  for (int l = 0; l < c.n_layers; ++l) layers_.emplace_back(model, l, rope_);
}

void EncoderPass::pack(const std::vector<Sequence>& batch) {
  const int pos0 = model_.config.position_offset + n_prefix();
  layout_ = BatchLayout{};
  layout_.causal = false;
  seq_row0_.clear();
  row_example_.clear();
  row_token_.clear();
  row_type_.clear();
  for (size_t b = 0; b < batch.size(); ++b) {
    const Sequence& s = batch[b];
    seq_row0_.push_back((int)row_token_.size());
    layout_.segments.push_back({(int)row_token_.size(), (int)s.tokens.size(), false});
    for (size_t t = 0; t < s.tokens.size(); ++t) {
      layout_.positions.push_back(pos0 + (int)t);
      row_example_.push_back((int)b);
      row_token_.push_back(s.tokens[t]);
      row_type_.push_back(s.token_types.empty() ? 0 : s.token_types[t]);
    }
  }
  layout_.rows = (int)row_token_.size();
}

const float* EncoderPass::virtual_row(int row) const {
  const int32_t tok = row_token_[row];
  if (!is_virtual(tok)) return nullptr;
  const int set = injection_.virtual_tokens.shape(0) == 1 ? 0 : row_example_[row];
  return &injection_.virtual_tokens(set, virtual_index(tok), 0);
}

// inputs_[0] = norm(token or virtual row + position + token type)
void EncoderPass::embed() {
  const ModelConfig& c = model_.config;
  const size_t R = layout_.rows, D = c.dim;
  xt::xtensor<float, 2>& x = inputs_[0];
  x.resize({R, D});
  parallel_for(R, D, [&](long r0, long r1) {
    for (long r = r0; r < r1; ++r) {
      embed_row(model_, row_token_[r], virtual_row(r), layout_.positions[r], &x(r, 0));
      if (model_.token_type_embedding) {  // absent: a model without token types
        const float* type = model_.token_type_embedding + (size_t)row_type_[r] * D;
        for (size_t i = 0; i < D; ++i) x(r, i) += type[i];
      }
    }
  });
  input_norm_.forward(model_, x);
}

// Logits of every sequence's first row, the mean cross-entropy over the labelled ones,
// and d loss / d logits (kept for backward).
double EncoderPass::classify(const std::vector<Sequence>& batch) {
  const size_t B = batch.size(), D = model_.config.dim;
  const int C = head_->classes();
  h0_.resize({B, D});
  for (size_t b = 0; b < B; ++b) std::copy_n(&inputs_.back()(seq_row0_[b], 0), D, &h0_(b, 0));
  dlogits_.resize({B, (size_t)C});
  head_->forward((int)B, h0_.data(), dlogits_.data());
  scored_ = 0;
  for (const Sequence& s : batch) scored_ += s.class_label != kIgnoreLabel;
  double loss = 0.0;
  for (size_t b = 0; b < B; ++b) {
    float* row = &dlogits_(b, 0);
    if (options_.all_logits) {
      logits_.emplace_back(xt::empty<float>({(size_t)1, (size_t)C}));
      std::copy_n(row, C, logits_.back().data());
    }
    const int label = batch[b].class_label;
    if (label == kIgnoreLabel) {
      std::fill(row, row + C, 0.0f);
      continue;
    }
    // (softmax - onehot) / scored, in place of the logits
    const float target = row[label];
    const float lse = softmax_inplace(C, row);
    sequence_nll_[b] = (double)lse - target;
    sequence_scored_[b] = 1;
    loss += sequence_nll_[b];
    for (int k = 0; k < C; ++k) row[k] /= scored_;
    row[label] -= 1.0f / scored_;
  }
  return scored_ ? loss / scored_ : 0.0;
}

double EncoderPass::forward(const std::vector<Sequence>& batch, const Injection& injection) {
  const ModelConfig& c = model_.config;
  have_forward_ = false;
  check_injection_shapes(c, injection);
  injection_ = injection;
  head_ = std::make_unique<EncoderHead>(
      model_, injection_.head.empty() ? model_.classifier : injection_.head);
  for (size_t b = 0; b < batch.size(); ++b)
    check_sequence(c, injection_, batch[b], b, n_prefix(), head_->classes());
  scored_ = 0;
  logits_.clear();
  sequence_nll_.assign(batch.size(), 0.0);
  sequence_scored_.assign(batch.size(), 0);
  if (batch.empty()) return 0.0;

  pack(batch);
  inputs_.resize(c.n_layers + 1);
  acts_.resize(options_.recompute ? 1 : c.n_layers);
  embed();
  for (int l = 0; l < c.n_layers; ++l)
    layers_[l].forward(layout_, prefix_spans(c, injection_.prefix, l, nullptr), inputs_[l],
                       acts_[options_.recompute ? 0 : l], inputs_[l + 1], scratch_);
  const double loss = classify(batch);
  have_forward_ = true;
  return loss;
}

void EncoderPass::backward(InjectionGrad& grad) {
  if (!have_forward_) throw Error("TrainingPass::backward called without a successful forward");
  const ModelConfig& c = model_.config;
  const size_t R = layout_.rows, D = c.dim;
  grad.virtual_tokens = xt::zeros<float>(injection_.virtual_tokens.shape());
  grad.prefix = xt::zeros<float>(injection_.prefix.shape());
  grad.head.clear();

  // the head: its weights' gradients, and d loss / d first rows
  xt::xtensor<float, 2> dh0 = xt::empty<float>(h0_.shape());
  head_->backward((int)h0_.shape(0), h0_.data(), dlogits_.data(), grad.head, dh0.data());
  dy_.resize({R, D});
  std::fill(dy_.begin(), dy_.end(), 0.0f);
  for (size_t b = 0; b < seq_row0_.size(); ++b) std::copy_n(&dh0(b, 0), D, &dy_(seq_row0_[b], 0));

  for (int l = c.n_layers - 1; l >= 0; --l) {
    LayerActivations& a = acts_[options_.recompute ? 0 : l];
    if (options_.recompute)  // rebuild the activations; the output (dx for now) is unused
      layers_[l].forward(layout_, prefix_spans(c, injection_.prefix, l, nullptr), inputs_[l], a,
                         dx_, scratch_);
    layers_[l].backward(layout_, prefix_spans(c, injection_.prefix, l, &grad.prefix), inputs_[l], a,
                        dy_, dx_, scratch_);
    std::swap(dx_, dy_);
  }

  // through the embedding norm; the virtual rows' share goes to the injection
  input_norm_.backward(model_, dy_);
  for (size_t r = 0; r < R; ++r)
    if (const int32_t tok = row_token_[r]; is_virtual(tok)) {
      const int set = injection_.virtual_tokens.shape(0) == 1 ? 0 : row_example_[r];
      embed_row_backward(model_, &dy_(r, 0), &grad.virtual_tokens(set, virtual_index(tok), 0));
    }
}

double EncoderPass::step_flops() const {
  const ModelConfig& c = model_.config;
  const double R = layout_.rows, D = c.dim, F = c.ffn_dim, hd = c.head_dim, H = c.n_heads;
  // projections: forward, and the same GEMMs transposed for the input gradient
  const double proj = 2 * R * (D * c.qkv_dim() + c.q_dim() * D + D * F + F * D);
  // attention per (segment, head), every query seeing every key: forward Q Kᵀ and P V;
  // backward recomputes Q Kᵀ, then dO Vᵀ, Pᵀ dO, dS K, dSᵀ Q
  double attn_fwd = 0, attn_bwd = 0;
  for (const Segment& sg : layout_.segments) {
    const double keys = n_prefix() + sg.len;
    attn_fwd += 2 * 2 * sg.len * keys * hd * H;
    attn_bwd += 5 * 2 * sg.len * keys * hd * H;
  }
  const double layers = c.n_layers * (2 * proj + attn_fwd + attn_bwd +
                                      (options_.recompute ? proj / 2 + attn_fwd : 0));
  // the head: two small GEMMs forward, their input and weight gradients backward
  const double head = h0_.shape(0) * 2.0 * D * (D + (head_ ? head_->classes() : 0)) * 3;
  return layers + head;
}

std::unique_ptr<PassImpl> make_encoder_pass(const Model& model, PassOptions options) {
  return std::make_unique<EncoderPass>(model, options);
}

}  // namespace ph
