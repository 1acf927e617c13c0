#include "models/engine/alibi.h"

#include <cmath>

namespace ph {

std::vector<double> alibi_slopes(int n_heads) {
  int p = 1;
  while (p * 2 <= n_heads) p *= 2;
  std::vector<double> slopes;
  for (int i = 1; i <= p; ++i) slopes.push_back(std::exp2(-8.0 * i / p));
  for (int i = 1; i <= n_heads - p; ++i) slopes.push_back(std::exp2(-4.0 * (2 * i - 1) / p));
  return slopes;
}

const DistanceBias* AlibiTable::ensure(int n_heads, int positions) {
  if (n_heads == heads_ && positions <= positions_) return &bias_;
  const std::vector<double> slopes = alibi_slopes(n_heads);
  const size_t width = 2 * (size_t)positions - 1;  // d = -(positions-1) .. positions-1
  table_.resize(n_heads * width);
  for (int h = 0; h < n_heads; ++h)
    for (size_t i = 0; i < width; ++i)
      table_[h * width + i] = (float)(slopes[h] * ((double)i - (positions - 1)));
  heads_ = n_heads;
  positions_ = positions;
  bias_ = DistanceBias{table_.data(), positions - 1, width};
  return &bias_;
}

}  // namespace ph
