// Tiny decoder configs for the engine's tests on random weights (make_random_model):
// small enough for finite differences, with the geometry each test varies as arguments.
#pragma once

#include "models/config/model_config.h"

namespace ph::test {

// Llama: 4 query heads of head_dim over dim 32 (head_dim need not be dim / heads).
inline ModelConfig tiny_llama_config(int kv_heads, bool qkv_bias, int head_dim, bool tied,
                                     int layers = 2) {
  ModelConfig c;
  c.arch = Arch::kLlama;
  c.n_layers = layers;
  c.dim = 32;
  c.n_heads = 4;
  c.n_kv_heads = kv_heads;
  c.head_dim = head_dim;
  c.ffn_dim = 40;
  c.vocab_size = 50;
  c.max_positions = 64;
  c.qkv_bias = qkv_bias;
  c.tied_head = tied;
  return c;
}

// A family with its usual recipe (gpt2, bloom, ...): 4 heads of 8, a tied head.
inline ModelConfig tiny_family_config(Arch arch, int layers = 2) {
  ModelConfig c;
  set_family(c, arch);
  c.n_layers = layers;
  c.dim = 32;
  c.n_heads = 4;
  c.n_kv_heads = 4;
  c.head_dim = 8;
  c.ffn_dim = 64;
  c.vocab_size = 50;
  c.max_positions = 64;
  c.tied_head = true;
  return c;
}

}  // namespace ph::test
