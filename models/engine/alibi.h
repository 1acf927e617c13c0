// ALiBi (bloom): attention scores get a per-head penalty linear in the key's position,
// slope_h · key position, which the softmax sees as slope_h · (key - query) (a per-query
// constant does not change it). The engine adds it as a DistanceBias (attention.h).
#pragma once

#include <vector>

#include "models/engine/attention.h"

namespace ph {

// transformers' build_alibi_tensor slopes: with p the largest power of two <= n_heads,
// heads 0..p-1 take 2^(-8i/p) (i = 1..p) and the remaining n_heads - p heads take
// 2^(-4(2i-1)/p) (i = 1..n_heads-p), the odd terms of the 2p-head sequence.
std::vector<double> alibi_slopes(int n_heads);

// A DistanceBias of slope_h · d for every distance d = key - query position that occurs
// among positions 0..positions-1, i.e. d in [-(positions-1), positions-1] (the causal
// mask's future keys are scored too, then ignored).
class AlibiTable {
 public:
  // The bias for `n_heads` heads over `positions` positions; rebuilt only when it has to
  // grow. The pointer stays valid until the next call.
  const DistanceBias* ensure(int n_heads, int positions);

 private:
  std::vector<float> table_;
  DistanceBias bias_;
  int heads_ = 0, positions_ = 0;
};

}  // namespace ph
