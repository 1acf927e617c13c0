// Forward and backward of a frozen model with respect to a soft-prompt injection,
// and KV-cached incremental decoding.
//
// A batch is a list of sequences of different lengths, packed row after row: no
// compute is spent on padding. A method injects
//   - virtual-token embeddings at slots of a sequence (a token value virtual_slot(k)
//     takes row k of the injection's embeddings), shared by the batch or one set per
//     example, and/or
//   - a key/value prefix per layer, used verbatim (no rotary embedding applied), which
//     every query sees; the sequence's own positions then start at n_prefix.
// Positions (peft-spec §1.5): virtual tokens are ordinary positions of the sequence,
// so prepended virtual tokens take 0..n-1 and the text follows.
//
// Weights are frozen: backward computes gradients with respect to the injection only.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include <xtensor/xtensor.hpp>

#include "models/engine/model.h"

namespace ph {

constexpr int32_t kIgnoreLabel = -100;

// Token value meaning "virtual-token embedding k of the injection goes here".
constexpr int32_t virtual_slot(int k) {
  return -1 - k;
}
constexpr bool is_virtual(int32_t token) {
  return token < 0;
}
constexpr int virtual_index(int32_t token) {
  return -1 - token;
}

// The teacher's next-token distribution at one position (distillation): its top-k token
// ids and their probabilities under the full vocabulary (not renormalised over the k).
struct SoftTarget {
  std::vector<int32_t> ids;
  std::vector<float> probs;
};

struct Sequence {
  // Token ids, or virtual_slot(k). Causal LMs: the sequence; encoder-decoders: the
  // encoder's input; classifiers: the text classified.
  std::vector<int32_t> tokens;
  // Causal LMs: empty (nothing scored) or one per token, transformers' convention:
  // labels[t] is the target predicted from position t-1; kIgnoreLabel is not scored.
  std::vector<int32_t> labels;
  // Encoder-decoders (SEQ_2_SEQ_LM): the decoder's input (ids or virtual slots; the
  // shift-right of the targets, starting with the decoder start token) and one label per
  // decoder token, T5's convention: decoder_labels[t] is the target scored at decoder
  // position t itself (not shifted); kIgnoreLabel is not scored.
  std::vector<int32_t> decoder_tokens, decoder_labels;
  // Classifiers (SEQ_CLS): the class id, or kIgnoreLabel (not scored).
  int32_t class_label = kIgnoreLabel;
  // Encoders with token types (bert): one per token (virtual tokens included), or empty
  // for all 0.
  std::vector<int32_t> token_types;
  // Causal LMs: empty (every weight 1) or one per label: the weight of labels[t]'s
  // cross-entropy (ph_scored_sequence.weights, CPT). The loss stays divided by the number
  // of scored labels, not by the sum of the weights.
  std::vector<float> label_weights;
  // Causal LMs trained by distillation (Cartridges): empty, or one per token like labels:
  // soft_targets[t] is the target of the row predicting token t (from t-1); no ids: not
  // scored. When a batch has any, its loss is PEFT's distillation example's instead of the
  // labels' (which are ignored): per position -sum_i probs_i * log_softmax(logits)_{ids_i},
  // the mean over a sequence's scored positions, then the mean over the sequences that
  // have any (decoder_pass.cpp).
  std::vector<SoftTarget> soft_targets;
};

struct Injection {
  // Virtual-token embeddings [1, n, dim] (shared by the batch) or [batch, n, dim]
  // (one set per example). Size 0 when the method injects none.
  xt::xtensor<float, 3> virtual_tokens;
  // Key/value prefix [layers, 2, kv_heads, n_prefix, head_dim]: [l][0] keys, [l][1]
  // values. Size 0 when the method injects none.
  xt::xtensor<float, 5> prefix;
  // SEQ_CLS: the classification head being trained, by transformers' module path
  // ("classifier.weight", "classifier.out_proj.bias", "score.weight", ...; PEFT's
  // modules_to_save). Empty: the model's own head (Model::classifier).
  NamedTensors head;
  // Causal decoders (llama, gpt2): LLaMA-Adapter's gated adapter attention
  // (ph_injection_spec.adapter_len / adapter_layers): prompts [adapter_layers, len, dim]
  // for the top adapter_layers layers and one raw gate per layer [adapter_layers]. Size 0
  // when the method injects none.
  xt::xtensor<float, 3> adapter_prompts;
  xt::xtensor<float, 1> adapter_gates;
};

// d loss / d injection, same shapes as the injection it belongs to.
struct InjectionGrad {
  xt::xtensor<float, 3> virtual_tokens;
  xt::xtensor<float, 5> prefix;
  NamedTensors head;  // one per tensor of Injection::head (of Model::classifier if empty)
  xt::xtensor<float, 3> adapter_prompts;
  xt::xtensor<float, 1> adapter_gates;
};

struct PassOptions {
  // Keep only each layer's input and recompute the rest in backward: less memory,
  // about one more forward of time.
  bool recompute = false;
  // Also compute the logits at every real (non-virtual) position (for tests and
  // evaluation); otherwise the output head runs only where a label is scored.
  bool all_logits = false;
  // Encoder-decoders: the prefix also reaches the encoder's self-attention and the
  // decoder's cross-attention, one distinct block per attention (Li & Liang's BART
  // setup; not PEFT's layout, which prefixes the decoder's self-attention only). The
  // injection's prefix then has n_layers + 2 * n_decoder_layers blocks (seq2seq_pass.cpp).
  bool prefix_all_attention = false;
  // Causal decoders, with all_logits: logits() covers every position, virtual tokens
  // included (CPT scores its context's virtual positions).
  bool virtual_logits = false;
};

class PassImpl;  // pass_impl.h

// One forward (and optionally backward) of a batch. Holds the activations backward needs.
class TrainingPass {
 public:
  TrainingPass(const Model& model, PassOptions options = {});
  ~TrainingPass();
  TrainingPass(const TrainingPass&) = delete;
  TrainingPass& operator=(const TrainingPass&) = delete;

  // Mean cross-entropy over scored labels (0 when nothing is scored): causal-LM tokens,
  // decoder tokens (SEQ_2_SEQ_LM) or classes (SEQ_CLS), as the model's task says.
  // Validates the batch: token ids within the vocabulary, virtual slots within the
  // injection, lengths within the context; throws ph::Error otherwise.
  double forward(const std::vector<Sequence>& batch, const Injection& injection);
  int scored_count() const;
  // What the last forward's loss is a mean over, to combine the losses (and gradients) of
  // several batches into their union's, e.g. across ranks: the scored labels, or, for
  // distillation (the mean over sequences of each one's mean), the sequences with soft
  // targets.
  int loss_count() const;
  // Floating-point operations (2 per multiply-add) of the GEMMs one forward and one
  // backward of the last batch execute (projections, attention, output head), for
  // reporting achieved GFLOP/s. Element-wise work is not counted.
  double step_flops() const;
  // Per sequence of the last forward: the summed cross-entropy of its scored labels
  // (nats) and how many it has — for evaluation and for ranking candidate outputs.
  const std::vector<double>& sequence_nll() const;
  const std::vector<int>& sequence_scored() const;
  // With options.all_logits: per sequence, [real tokens, vocab] in order of position
  // (encoder-decoders: the real decoder tokens; classifiers: [1, classes]).
  const std::vector<xt::xtensor<float, 2>>& logits() const;
  // The loss's gradient with respect to the injection of the last forward. `grad` is
  // resized to the injection's shapes and overwritten.
  void backward(InjectionGrad& grad);

 private:
  std::unique_ptr<PassImpl> impl_;
};

// The key/value cache of one sequence being decoded.
struct KVCache {
  int length = 0;  // positions filled; the next token's position is `length`
  int capacity = 0;
  // Per layer, [kv_heads, capacity, head_dim]; keys already rotated.
  std::vector<xt::xtensor<float, 3>> keys, values;
  // LLaMA-Adapter (append_adapters): per layer, the adapter prompt through the layer's
  // q|k|v projection [len, qkv_dim] (size 0: the layer is not adapted), and its gate.
  // Empty: no adapter. They take no positions.
  std::vector<xt::xtensor<float, 2>> adapter_kv;
  std::vector<float> adapter_gates;
};

KVCache make_kv_cache(const Model& model, int capacity);

// Puts a key/value prefix ([layers, 2, kv_heads, n, head_dim]) at the start of an
// empty cache, so that decoding continues at position n.
void append_prefix(KVCache& cache, const xt::xtensor<float, 5>& prefix);

// Gives the cache the injection's gated adapter attention (Injection::adapter_prompts and
// adapter_gates; none when empty), which every token decoded with it then reads. Throws
// ph::Error if their shapes do not fit the model.
void append_adapters(const Model& model, KVCache& cache, const Injection& injection);

// Runs `tokens` (ids or virtual slots taking rows of `virtual_tokens`, [n, dim] or empty)
// at positions cache.length.., appends their keys/values to the cache and returns the
// logits of the last token [vocab]. Throws ph::Error if the cache would overflow or a
// token is out of range.
xt::xtensor<float, 1> extend(const Model& model, KVCache& cache, const std::vector<int32_t>& tokens,
                             const xt::xtensor<float, 2>& virtual_tokens = {});

}  // namespace ph

namespace ph {

// Threads the engine uses (one pool for GEMM slices, attention and element-wise loops,
// see parallel.h; OpenBLAS itself runs single-threaded); <= 0 keeps the current count
// (initially the number of cores). Results are bit-identical for a given thread count.
void set_num_threads(int threads);

}  // namespace ph
