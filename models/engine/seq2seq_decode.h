// KV-cached decoding of an encoder-decoder (t5): the encoder runs once over the input,
// each decoder layer's cross-attention keys and values of its output are kept, and the
// decoder then extends a self-attention cache token by token.
#pragma once

#include <cstdint>
#include <vector>

#include <xtensor/xtensor.hpp>

#include "models/engine/engine.h"
#include "models/engine/t5_block.h"

namespace ph {

struct Seq2SeqCache {
  int encoder_len = 0;
  // Per decoder layer: the encoder output's keys and values [encoder_len, k | v], and (with
  // a prefix in every attention) the cross-attention prefix [kv_heads, n, head_dim] x 2.
  std::vector<xt::xtensor<float, 2>> cross_kv;
  std::vector<xt::xtensor<float, 3>> cross_prefix_k, cross_prefix_v;
  // The decoder's self-attention cache: its prefix (PEFT's block mapping), then the
  // decoder tokens so far.
  KVCache self;
  RelativeBias bias;  // the decoder's, over the cache's capacity
};

// Runs the encoder over `encoder_tokens` (ids or virtual slots taking rows of
// `virtual_tokens` [n, dim]) and prepares a decoder cache of `decoder_capacity` positions
// (the prefix included) holding the injection's prefix, mapped to the layers as the
// training pass maps it (seq2seq_pass.cpp; `prefix_all_attention` as PassOptions says).
// Throws ph::Error if a token is out of range or the prefix does not fit the model.
Seq2SeqCache encode(const Model& model, const std::vector<int32_t>& encoder_tokens,
                    const xt::xtensor<float, 2>& virtual_tokens,
                    const xt::xtensor<float, 5>& prefix, int decoder_capacity,
                    bool prefix_all_attention = false);

// Runs decoder `tokens` (ids or virtual slots of `virtual_tokens` [n, dim]) at the next
// decoder positions, appends their keys/values and returns the last token's logits.
xt::xtensor<float, 1> extend_decoder(const Model& model, Seq2SeqCache& cache,
                                     const std::vector<int32_t>& tokens,
                                     const xt::xtensor<float, 2>& virtual_tokens = {});

}  // namespace ph
