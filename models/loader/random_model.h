// A model of a given shape with seeded random weights: for gradient checks and for
// benchmarks on real model shapes without their files.
#pragma once

#include <cstdint>

#include "models/engine/model.h"

namespace ph {

// Weights as the reference draws them (reference/ref_models.py random_weights):
// matrices N(0, 0.02), norm gains 1 + N(0, 0.1), biases N(0, 0.02). The same seed
// gives the same weights on every machine (no std:: distributions). The recipe decides
// what exists: biases (gpt2, bloom: every projection; qkv_bias), LayerNorm biases, the
// embedding norm, learned positions, and for a SEQ_CLS decoder its score head.
Model make_random_model(const ModelConfig& config, uint64_t seed);

}  // namespace ph
