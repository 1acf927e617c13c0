// The encoder-decoder pass (SEQ_2_SEQ_LM, t5): pack the encoder inputs and the decoder
// inputs of a batch, run the encoder stack, then the decoder stack with cross-attention
// to each sequence's encoder output, score the decoder's labels, and backpropagate
// through decoder, cross-attention and encoder to the injection.
//
// Injection, as PEFT feeds it (tests/fixtures/hf/README.md):
//   - virtual slots may stand in the encoder input (prompt tuning, P-tuning: slots
//     0..n-1 first) and in the decoder input (multitask: slots n..2n-1 first, unscored);
//     both take rows of the same injection table;
//   - a key/value prefix reaches the decoder's self-attention only, with PEFT's block
//     mapping: decoder layer l uses prefix layer (2l) mod L of the injection's
//     [L = n_layers, 2, heads, n, head_dim] (PEFT repeats the 2L blocks and hands layer l
//     blocks 4l, 4l+1; their cross-attention part is discarded). The prefix keys sit at
//     positions 0..n-1 of the relative bias, the decoder tokens at n.. .
//   - PassOptions::prefix_all_attention (not PEFT's layout): one distinct prefix per
//     attention, [n_layers + 2 n_decoder_layers, 2, heads, n, head_dim]: encoder layer l
//     uses block l (its tokens then start at position n, as the decoder's do), decoder
//     layer l uses block n_layers + 2l in its self-attention and n_layers + 2l + 1 in its
//     cross-attention (no position bias there), as Li & Liang did for BART.
//
// Labels follow T5: decoder position t is scored against decoder_labels[t]; the loss is
// the mean cross-entropy over every scored label of the batch.
#include <algorithm>
#include <string>

#include "models/common/error.h"
#include "models/engine/embedding.h"
#include "models/engine/engine.h"
#include "models/engine/kernels.h"
#include "models/engine/linear.h"
#include "models/engine/parallel.h"
#include "models/engine/pass_impl.h"
#include "models/engine/t5_block.h"

namespace ph {

namespace {

// Rows of logits formed at once (as the decoder pass: the head's matrix streams once
// per chunk).
constexpr int kHeadChunk = 256;

struct Score {
  int row;  // decoder row
  int target;
  int sequence;
};

enum class Attention { kEncoder, kDecoderSelf, kCross };

// One stack's packed rows and what its forward keeps.
struct Stack {
  StackLayout layout;
  std::vector<int32_t> row_token;  // token id or virtual slot
  std::vector<int> row_example;
  RelativeBias bias;
  // inputs[l]: input of block l; inputs.back(): the last block's output.
  std::vector<xt::xtensor<float, 2>> inputs;
  std::vector<T5Activations> acts;  // per block; with recompute, one reused by all
};

void check_tokens(const ModelConfig& c, const Injection& inj, const std::vector<int32_t>& tokens,
                  size_t b, const std::string& where, const char* what) {
  const size_t sets = inj.virtual_tokens.size() ? inj.virtual_tokens.shape(0) : 0;
  const int n_virtual = sets ? (int)inj.virtual_tokens.shape(1) : 0;
  for (size_t t = 0; t < tokens.size(); ++t) {
    const int32_t tok = tokens[t];
    if (is_virtual(tok)) {
      if (virtual_index(tok) >= n_virtual)
        throw Error(where + "virtual slot " + std::to_string(virtual_index(tok)) + " at " + what +
                    " position " + std::to_string(t) + ", but the injection has " +
                    std::to_string(n_virtual) + " virtual tokens");
      if (sets > 1 && b >= sets)
        throw Error(where + "no per-example virtual tokens for this example (the injection has " +
                    std::to_string(sets) + " sets)");
    } else if (tok >= c.vocab_size) {
      throw Error(where + "token id " + std::to_string(tok) + " at " + what + " position " +
                  std::to_string(t) + " is outside the vocabulary of " +
                  std::to_string(c.vocab_size));
    }
  }
}

void check_sequence(const ModelConfig& c, const Injection& inj, const Sequence& s, size_t b,
                    int encoder_prefix, int decoder_prefix) {
  const std::string where = "batch sequence " + std::to_string(b) + ": ";
  if (s.tokens.empty()) throw Error(where + "the encoder input is empty");
  if (s.decoder_labels.size() != s.decoder_tokens.size())
    throw Error(where + std::to_string(s.decoder_labels.size()) + " decoder labels for " +
                std::to_string(s.decoder_tokens.size()) + " decoder tokens");
  if (encoder_prefix + (long)s.tokens.size() > c.max_positions ||
      decoder_prefix + (long)s.decoder_tokens.size() > c.max_positions)
    throw Error(where + "encoder length " + std::to_string(s.tokens.size()) +
                " or decoder length " + std::to_string(s.decoder_tokens.size()) +
                " (plus a prefix) exceeds the model's context of " +
                std::to_string(c.max_positions));
  check_tokens(c, inj, s.tokens, b, where, "encoder");
  check_tokens(c, inj, s.decoder_tokens, b, where, "decoder");
  for (size_t t = 0; t < s.decoder_labels.size(); ++t) {
    const int32_t l = s.decoder_labels[t];
    if (l != kIgnoreLabel && (l < 0 || l >= c.vocab_size))
      throw Error(where + "decoder label " + std::to_string(l) + " at position " +
                  std::to_string(t) + " is outside the vocabulary of " +
                  std::to_string(c.vocab_size));
  }
}

}  // namespace

// What a pass keeps: the blocks, and the last forward's activations.
struct Seq2SeqState {
  const Model& model;
  PassOptions options;
  std::vector<T5Block> encoder_blocks, decoder_blocks;

  // the last forward
  Injection injection;
  Stack enc, dec;
  std::vector<int> dec_row0;              // per sequence: its first decoder row
  xt::xtensor<float, 2> enc_out;          // encoder output after its final norm
  xt::xtensor<float, 1> enc_rstd;
  std::vector<xt::xtensor<float, 2>> enc_kv;  // per decoder layer: [enc rows, k | v]
  T5Scratch scratch;
  std::vector<Score> scores;
  xt::xtensor<float, 1> final_rstd;  // decoder final norm of scored rows
  xt::xtensor<float, 2> d_final;     // d loss / d final-normed scored rows
  std::vector<double> row_nll;
  xt::xtensor<float, 2> head_gathered, head_normed, head_logits;
  std::vector<xt::xtensor<float, 2>> logits;
  std::vector<double> sequence_nll;
  std::vector<int> sequence_scored;
  bool have_forward = false;

  Seq2SeqState(const Model& m, PassOptions o) : model(m), options(o) {
    const ModelConfig& c = m.config;
    if ((int)m.decoder_layers.size() != c.n_decoder_layers ||
        m.cross_attention.size() != m.decoder_layers.size() || !m.encoder_relative_bias ||
        !m.decoder_relative_bias)
      throw Error("the encoder-decoder pass needs a model with decoder layers, their "
                  "cross-attention and relative position biases");
    for (int l = 0; l < c.n_layers; ++l) encoder_blocks.emplace_back(c, m.layers[l], nullptr);
    for (int l = 0; l < c.n_decoder_layers; ++l)
      decoder_blocks.emplace_back(c, m.decoder_layers[l], &m.cross_attention[l]);
  }

  int n_prefix() const { return injection.prefix.size() ? (int)injection.prefix.shape(3) : 0; }
  int prefix_blocks() const {
    const ModelConfig& c = model.config;
    return options.prefix_all_attention ? c.n_layers + 2 * c.n_decoder_layers : c.n_layers;
  }
  // The injection's prefix block an attention of layer l uses, or -1.
  int prefix_block(Attention a, int l) const {
    if (n_prefix() == 0) return -1;
    const int L = model.config.n_layers;
    if (!options.prefix_all_attention) return a == Attention::kDecoderSelf ? 2 * l % L : -1;
    if (a == Attention::kEncoder) return l;
    return L + 2 * l + (a == Attention::kCross ? 1 : 0);
  }
  std::vector<KVSpan> prefix_spans(Attention a, int l, InjectionGrad* grad) {
    const int p = prefix_block(a, l);
    if (p < 0) return {};
    const int n = n_prefix(), hd = model.config.head_dim;
    KVSpan s;
    s.k = &injection.prefix(p, 0, 0, 0, 0);
    s.v = &injection.prefix(p, 1, 0, 0, 0);
    s.n = n;
    s.pos_stride = hd;
    s.head_stride = (size_t)n * hd;
    if (grad) {
      s.dk = &grad->prefix(p, 0, 0, 0, 0);
      s.dv = &grad->prefix(p, 1, 0, 0, 0);
    }
    return {s};
  }

  // Decoder layer l's context: its self-attention prefix, and per sequence its encoder
  // rows' keys and values (and a cross-attention prefix).
  BlockContext decoder_context(int l, InjectionGrad* grad, std::vector<xt::xtensor<float, 2>>* d_kv) {
    BlockContext ctx;
    ctx.self = prefix_spans(Attention::kDecoderSelf, l, grad);
    const std::vector<KVSpan> cross_prefix = prefix_spans(Attention::kCross, l, grad);
    const size_t kvd = model.config.kv_dim();
    for (const StackSegment& sg : enc.layout.segments) {
      std::vector<KVSpan> spans = cross_prefix;
      KVSpan s;
      s.k = &enc_kv[l](sg.row0, 0);
      s.v = &enc_kv[l](sg.row0, kvd);
      s.n = sg.len;
      s.pos_stride = 2 * kvd;
      s.head_stride = model.config.head_dim;
      if (d_kv) {
        s.dk = &(*d_kv)[l](sg.row0, 0);
        s.dv = &(*d_kv)[l](sg.row0, kvd);
      }
      spans.push_back(s);
      ctx.cross.push_back(std::move(spans));
    }
    return ctx;
  }
  BlockContext encoder_context(int l, InjectionGrad* grad) {
    BlockContext ctx;
    ctx.self = prefix_spans(Attention::kEncoder, l, grad);
    return ctx;
  }

  void pack(Stack& st, const std::vector<Sequence>& batch, bool decoder, int pos0) {
    st.layout = StackLayout{};
    st.layout.causal = decoder;
    st.row_token.clear();
    st.row_example.clear();
    if (decoder) dec_row0.clear();
    for (size_t b = 0; b < batch.size(); ++b) {
      const auto& toks = decoder ? batch[b].decoder_tokens : batch[b].tokens;
      if (decoder) dec_row0.push_back((int)st.row_token.size());
      st.layout.segments.push_back({(int)st.row_token.size(), (int)toks.size(), pos0});
      for (int32_t t : toks) {
        st.row_token.push_back(t);
        st.row_example.push_back((int)b);
      }
    }
    st.layout.rows = (int)st.row_token.size();
    int longest = 0;
    for (const auto& sg : st.layout.segments) longest = std::max(longest, sg.len);
    st.bias.build(model.config, decoder ? model.decoder_relative_bias : model.encoder_relative_bias,
                  !decoder, pos0 + longest);
    st.layout.bias = &st.bias.bias;
  }

  const float* virtual_row(const Stack& st, int row) const {
    const int32_t tok = st.row_token[row];
    if (!is_virtual(tok)) return nullptr;
    const int set = injection.virtual_tokens.shape(0) == 1 ? 0 : st.row_example[row];
    return &injection.virtual_tokens(set, virtual_index(tok), 0);
  }

  void embed(Stack& st) {
    const int R = st.layout.rows, D = model.config.dim;
    st.inputs[0].resize({(size_t)R, (size_t)D});
    parallel_for(R, D, [&](long r0, long r1) {
      for (long r = r0; r < r1; ++r)
        embed_row(model, st.row_token[r], virtual_row(st, r), 0, &st.inputs[0](r, 0));
    });
  }

  T5Activations& acts_of(Stack& st, int l) { return st.acts[options.recompute ? 0 : l]; }

  void run_encoder() {
    const ModelConfig& c = model.config;
    const size_t R = enc.layout.rows, D = c.dim;
    enc.inputs.resize(c.n_layers + 1);
    enc.acts.resize(options.recompute ? 1 : c.n_layers);
    embed(enc);
    for (int l = 0; l < c.n_layers; ++l)
      encoder_blocks[l].forward(enc.layout, encoder_context(l, nullptr), enc.inputs[l],
                                acts_of(enc, l), enc.inputs[l + 1], scratch);
    enc_out.resize({R, D});
    enc_rstd.resize({R});
    norm_forward(model.final_norm, c.norm_eps, R, D, enc.inputs.back().data(), enc_out.data(),
                 nullptr, enc_rstd.data());
    enc_kv.resize(c.n_decoder_layers);
    for (int l = 0; l < c.n_decoder_layers; ++l) {
      enc_kv[l].resize({R, (size_t)2 * c.kv_dim()});
      linear_forward(model.cross_attention[l].kv, R, enc_out.data(), D, enc_kv[l].data(),
                     2 * c.kv_dim());
    }
  }

  void run_decoder() {
    const ModelConfig& c = model.config;
    dec.inputs.resize(c.n_decoder_layers + 1);
    dec.acts.resize(options.recompute ? 1 : c.n_decoder_layers);
    embed(dec);
    for (int l = 0; l < c.n_decoder_layers; ++l)
      decoder_blocks[l].forward(dec.layout, decoder_context(l, nullptr, nullptr), dec.inputs[l],
                                acts_of(dec, l), dec.inputs[l + 1], scratch);
  }

  // Decoder final norm and head over `rows`, in chunks; visit(i, logits row) sees each
  // row's logits (rows spread over threads). With d_normed set, visit turns the logits
  // into d loss / d logits in place and d_normed receives d loss / d normed row.
  template <class Visit>
  void head_chunks(const std::vector<int>& rows, float* rstd, float* d_normed, Visit visit) {
    const ModelConfig& c = model.config;
    const int D = c.dim, V = c.vocab_size;
    const size_t chunk = std::min<size_t>(kHeadChunk, rows.size());
    head_gathered.resize({chunk, (size_t)D});
    head_normed.resize({chunk, (size_t)D});
    head_logits.resize({chunk, (size_t)V});
    float scratch_rstd[kHeadChunk];
    for (size_t i0 = 0; i0 < rows.size(); i0 += kHeadChunk) {
      const int n = (int)std::min<size_t>(kHeadChunk, rows.size() - i0);
      for (int i = 0; i < n; ++i)
        std::copy_n(&dec.inputs.back()(rows[i0 + i], 0), D, &head_gathered(i, 0));
      norm_forward(model.decoder_final_norm, c.norm_eps, n, D, head_gathered.data(),
                   head_normed.data(), nullptr, rstd ? rstd + i0 : scratch_rstd);
      linear_forward(model.head, n, head_normed.data(), D, head_logits.data(), V);
      parallel_for(n, V, [&](long b, long e) {
        for (long i = b; i < e; ++i) visit(i0 + i, &head_logits(i, 0));
      });
      if (d_normed)
        linear_backward_input(model.head, n, head_logits.data(), V, d_normed + i0 * D, D, false);
    }
  }

  // d loss / d input rows of a stack (in dy) -> the injection's virtual tokens.
  void virtual_grad(const Stack& st, const xt::xtensor<float, 2>& dy, InjectionGrad& grad) const {
    for (int r = 0; r < st.layout.rows; ++r) {
      const int32_t tok = st.row_token[r];
      if (!is_virtual(tok)) continue;
      const int set = injection.virtual_tokens.shape(0) == 1 ? 0 : st.row_example[r];
      embed_row_backward(model, &dy(r, 0), &grad.virtual_tokens(set, virtual_index(tok), 0));
    }
  }
};

class Seq2SeqPass final : public PassImpl {
 public:
  Seq2SeqPass(const Model& model, PassOptions options);
  double forward(const std::vector<Sequence>& batch, const Injection& injection) override;
  void backward(InjectionGrad& grad) override;
  int scored_count() const override { return (int)state_->scores.size(); }
  double step_flops() const override;
  const std::vector<double>& sequence_nll() const override { return state_->sequence_nll; }
  const std::vector<int>& sequence_scored() const override { return state_->sequence_scored; }
  const std::vector<xt::xtensor<float, 2>>& logits() const override { return state_->logits; }

 private:
  std::unique_ptr<Seq2SeqState> state_;
};

Seq2SeqPass::Seq2SeqPass(const Model& model, PassOptions options)
    : state_(std::make_unique<Seq2SeqState>(model, options)) {}

double Seq2SeqPass::step_flops() const {
  const Seq2SeqState& st = *state_;
  const ModelConfig& c = st.model.config;
  const double D = c.dim, F = c.ffn_dim, hd = c.head_dim, H = c.n_heads;
  const double Re = st.enc.layout.rows, Rd = st.dec.layout.rows;
  const double mlp = D * (c.gated_mlp ? 2 * F : F) + F * D;
  const double self_proj = D * c.qkv_dim() + c.q_dim() * D;
  const double np = st.n_prefix();
  // attention per query row and key: Q Kᵀ, P V forward; backward recomputes Q Kᵀ and
  // forms dP, dV, dQ, dK (5 GEMMs); 2 flops per multiply-add
  auto attention = [&](const StackLayout& layout, double context) {
    double keys = 0;
    for (const auto& sg : layout.segments) keys += (double)sg.len * (context + sg.len);
    return 7 * 2 * keys * hd * H;
  };
  double cross_keys = 0;
  for (size_t s = 0; s < st.dec.layout.segments.size(); ++s)
    cross_keys += (double)st.dec.layout.segments[s].len * st.enc.layout.segments[s].len;
  const bool all = st.options.prefix_all_attention;
  // projections run forward and transposed in backward: 2 x 2 flops per multiply-add
  const double enc = c.n_layers * (4 * Re * (self_proj + mlp) + attention(st.enc.layout, all ? np : 0));
  const double dec =
      c.n_decoder_layers * (4 * Rd * (self_proj + mlp + 2 * c.q_dim() * D) +
                            4 * Re * D * 2 * c.kv_dim() + attention(st.dec.layout, np) +
                            7 * 2 * cross_keys * hd * H);
  const double head = 2 * 2.0 * st.scores.size() * D * c.vocab_size;
  const double recompute = st.options.recompute ? (enc + dec) / 4 : 0;
  return enc + dec + head + recompute;
}

double Seq2SeqPass::forward(const std::vector<Sequence>& batch, const Injection& injection) {
  Seq2SeqState& st = *state_;
  const ModelConfig& c = st.model.config;
  const int D = c.dim, V = c.vocab_size;
  st.have_forward = false;
  const auto& pre = injection.prefix;
  if (pre.size() > 0 &&
      (pre.shape(0) != (size_t)st.prefix_blocks() || pre.shape(1) != 2 ||
       pre.shape(2) != (size_t)c.n_kv_heads || pre.shape(4) != (size_t)c.head_dim))
    throw Error("injection: key/value prefix has shape [" + std::to_string(pre.shape(0)) + ", " +
                std::to_string(pre.shape(1)) + ", " + std::to_string(pre.shape(2)) + ", n, " +
                std::to_string(pre.shape(4)) + "], the model needs [" +
                std::to_string(st.prefix_blocks()) + ", 2, " + std::to_string(c.n_kv_heads) +
                ", n, " + std::to_string(c.head_dim) + "]" +
                (st.options.prefix_all_attention ? " (a prefix for every attention)" : ""));
  if (injection.virtual_tokens.size() > 0 && injection.virtual_tokens.shape(2) != (size_t)D)
    throw Error("injection: virtual tokens have width " +
                std::to_string(injection.virtual_tokens.shape(2)) +
                ", the model's hidden size is " + std::to_string(D));
  st.injection = injection;
  const int np = st.n_prefix(), enc_np = st.options.prefix_all_attention ? np : 0;
  for (size_t b = 0; b < batch.size(); ++b) check_sequence(c, injection, batch[b], b, enc_np, np);
  st.scores.clear();
  st.logits.clear();
  st.sequence_nll.assign(batch.size(), 0.0);
  st.sequence_scored.assign(batch.size(), 0);
  if (batch.empty()) return 0.0;

  st.pack(st.enc, batch, false, enc_np);
  st.pack(st.dec, batch, true, np);
  st.run_encoder();
  st.run_decoder();

  for (size_t b = 0; b < batch.size(); ++b) {
    const auto& labels = batch[b].decoder_labels;
    for (size_t t = 0; t < labels.size(); ++t)
      if (labels[t] != kIgnoreLabel) st.scores.push_back({st.dec_row0[b] + (int)t, labels[t], (int)b});
  }
  std::vector<int> rows;
  for (const Score& s : st.scores) rows.push_back(s.row);
  const size_t N = st.scores.size();
  st.final_rstd.resize({N});
  st.d_final.resize({N, (size_t)D});
  st.row_nll.resize(N);
  st.head_chunks(rows, st.final_rstd.data(), st.d_final.data(), [&](size_t i, float* logit) {
    const float target_logit = logit[st.scores[i].target];
    const float lse = softmax_inplace(V, logit);
    st.row_nll[i] = (double)lse - target_logit;
    const float inv_n = 1.0f / N;
    for (int v = 0; v < V; ++v) logit[v] *= inv_n;
    logit[st.scores[i].target] -= inv_n;
  });
  double loss = 0.0;
  for (size_t i = 0; i < N; ++i) {
    loss += st.row_nll[i];
    st.sequence_nll[st.scores[i].sequence] += st.row_nll[i];
    st.sequence_scored[st.scores[i].sequence] += 1;
  }

  if (st.options.all_logits) {
    for (size_t b = 0; b < batch.size(); ++b) {
      std::vector<int> real;
      const auto& toks = batch[b].decoder_tokens;
      for (size_t t = 0; t < toks.size(); ++t)
        if (!is_virtual(toks[t])) real.push_back(st.dec_row0[b] + (int)t);
      xt::xtensor<float, 2> out = xt::empty<float>({real.size(), (size_t)V});
      st.head_chunks(real, nullptr, nullptr,
                     [&](size_t i, float* logit) { std::copy_n(logit, V, &out(i, 0)); });
      st.logits.push_back(std::move(out));
    }
  }
  st.have_forward = true;
  return N ? loss / N : 0.0;
}

void Seq2SeqPass::backward(InjectionGrad& grad) {
  Seq2SeqState& st = *state_;
  if (!st.have_forward) throw Error("TrainingPass::backward called without a successful forward");
  const Model& model = st.model;
  const ModelConfig& c = model.config;
  const size_t D = c.dim, Rd = st.dec.layout.rows, Re = st.enc.layout.rows;
  grad.virtual_tokens = xt::zeros<float>(st.injection.virtual_tokens.shape());
  grad.prefix = xt::zeros<float>(st.injection.prefix.shape());
  grad.head.clear();

  // decoder final norm: scored rows' gradient scattered to the decoder output rows
  xt::xtensor<float, 2> dy = xt::zeros<float>({Rd, D}), dx;
  const size_t N = st.scores.size();
  if (N > 0) {
    xt::xtensor<float, 2> gathered = xt::empty<float>({N, D}), dg = xt::empty<float>({N, D});
    for (size_t i = 0; i < N; ++i)
      std::copy_n(&st.dec.inputs.back()(st.scores[i].row, 0), D, &gathered(i, 0));
    norm_backward(model.decoder_final_norm, (int)N, (int)D, gathered.data(), nullptr,
                  st.final_rstd.data(), st.d_final.data(), dg.data(), false);
    for (size_t i = 0; i < N; ++i) add_floats(D, &dg(i, 0), &dy(st.scores[i].row, 0));
  }

  // decoder blocks; their cross-attention gathers d (encoder keys | values) per layer
  std::vector<xt::xtensor<float, 2>> d_kv(c.n_decoder_layers);
  for (auto& t : d_kv) t = xt::zeros<float>({Re, (size_t)2 * c.kv_dim()});
  for (int l = c.n_decoder_layers - 1; l >= 0; --l) {
    T5Activations& a = st.acts_of(st.dec, l);
    const BlockContext ctx = st.decoder_context(l, &grad, &d_kv);
    if (st.options.recompute)
      st.decoder_blocks[l].forward(st.dec.layout, st.decoder_context(l, nullptr, nullptr),
                                   st.dec.inputs[l], a, dx, st.scratch);
    st.decoder_blocks[l].backward(st.dec.layout, ctx, st.dec.inputs[l], a, dy, dx, st.scratch);
    std::swap(dx, dy);
  }
  st.virtual_grad(st.dec, dy, grad);

  // encoder output: every decoder layer's share, then the final norm and the blocks
  xt::xtensor<float, 2> d_out = xt::zeros<float>({Re, D});
  for (int l = 0; l < c.n_decoder_layers; ++l)
    linear_backward_input(model.cross_attention[l].kv, Re, d_kv[l].data(), 2 * c.kv_dim(),
                          d_out.data(), D, true);
  dy.resize({Re, D});
  norm_backward(model.final_norm, Re, D, st.enc.inputs.back().data(), nullptr, st.enc_rstd.data(),
                d_out.data(), dy.data(), false);
  for (int l = c.n_layers - 1; l >= 0; --l) {
    T5Activations& a = st.acts_of(st.enc, l);
    if (st.options.recompute)
      st.encoder_blocks[l].forward(st.enc.layout, st.encoder_context(l, nullptr), st.enc.inputs[l],
                                   a, dx, st.scratch);
    st.encoder_blocks[l].backward(st.enc.layout, st.encoder_context(l, &grad), st.enc.inputs[l], a,
                                  dy, dx, st.scratch);
    std::swap(dx, dy);
  }
  st.virtual_grad(st.enc, dy, grad);
}

std::unique_ptr<PassImpl> make_seq2seq_pass(const Model& model, PassOptions options) {
  return std::make_unique<Seq2SeqPass>(model, options);
}

}  // namespace ph
