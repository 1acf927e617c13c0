// A loaded frozen model: its config and read-only weights, laid out for the kernels.
//
// Weights are never copied when the file holds them as float32 in the layout the
// kernels want: they point into a memory-mapped file. Otherwise (F16/BF16, fused q|k|v,
// llama2.c's interleaved rotary rows) the loader builds an owned buffer. Either way
// `storage` keeps the memory alive for as long as the Model lives.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include <xtensor/xarray.hpp>

#include "models/config/model_config.h"

namespace ph {

// y[rows, out] = x[rows, in] · Wᵀ + b. The weight is stored either as PyTorch's Linear
// does, [out, in] row-major (in_major = false), or as GPT-2's Conv1D does, [in, out]
// row-major (in_major = true). Both are used as they are: the GEMM transposes.
struct Linear {
  const float* w = nullptr;
  const float* b = nullptr;  // nullptr: no bias
  int in = 0;
  int out = 0;
  bool in_major = false;
};

// RMSNorm (bias == nullptr) or LayerNorm gain and bias, each [dim].
struct Norm {
  const float* w = nullptr;
  const float* b = nullptr;
};

struct LayerWeights {
  Norm attn_norm;
  Linear qkv;       // fused: output columns [q (n_heads*head_dim) | k (kv_dim) | v (kv_dim)]
  Linear attn_out;  // [dim] <- [n_heads*head_dim]
  Norm mlp_norm;
  Linear mlp_in;   // llama: fused [gate (ffn) | up (ffn)]; gpt2: c_fc [ffn]
  Linear mlp_out;  // [dim] <- [ffn]
};

// Tensors by name (a classification head's weights, by transformers' module path).
using NamedTensors = std::map<std::string, xt::xarray<float>>;

// Something that owns memory the weights point into (an mmap, a vector).
struct WeightStorage {
  virtual ~WeightStorage() = default;
};

struct Model {
  ModelConfig config;
  const float* token_embedding = nullptr;     // [vocab, dim]
  const float* position_embedding = nullptr;  // gpt2 only: [max_positions, dim]
  std::vector<LayerWeights> layers;
  Norm final_norm;
  Linear head;  // [vocab] <- [dim]; aliases token_embedding when tied
  // SEQ_CLS models: the base model's classification head, by transformers' module path
  // (the starting point of the head a prompt method trains with it).
  NamedTensors classifier;
  std::vector<std::shared_ptr<WeightStorage>> storage;
  Norm embed_norm;  // config.embed_norm (bloom's word_embeddings_layernorm), else unset

  // An owned float buffer of `count` elements whose lifetime is tied to this model.
  float* allocate(size_t count);
};

// Loads a model from a Hugging Face folder (config.json + model.safetensors or a
// sharded model.safetensors.index.json) or a llama2.c checkpoint (.bin).
// Throws ph::Error naming the file, tensor or field on any problem.
Model load_model(const std::string& path);

}  // namespace ph
