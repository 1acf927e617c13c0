#include "host/trainer/batching.h"

#include <utility>

namespace ph::trainer {

namespace {

uint64_t mix(uint64_t z) {  // splitmix64's finaliser
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

}  // namespace

std::vector<int> epoch_order(int n, uint64_t seed, int epoch) {
  std::vector<int> order(n);
  for (int i = 0; i < n; ++i) order[i] = i;
  uint64_t state = mix(seed * 0x9e3779b97f4a7c15ull + (uint64_t)epoch + 1);
  for (int i = n - 1; i > 0; --i) {  // Fisher-Yates
    state = mix(state + 0x9e3779b97f4a7c15ull);
    const int j = (int)(state % (uint64_t)(i + 1));
    std::swap(order[i], order[j]);
  }
  return order;
}

std::vector<std::vector<int>> make_batches(const std::vector<int>& order,
                                           const std::vector<int>& lengths, int batch_size,
                                           int max_tokens) {
  std::vector<std::vector<int>> batches;
  std::vector<int> current;
  long tokens = 0;
  for (int i : order) {
    const bool over_budget = max_tokens > 0 && tokens + lengths[i] > max_tokens;
    if (!current.empty() && ((int)current.size() >= batch_size || over_budget)) {
      batches.push_back(std::move(current));
      current.clear();
      tokens = 0;
    }
    current.push_back(i);
    tokens += lengths[i];
  }
  if (!current.empty()) batches.push_back(std::move(current));
  return batches;
}

}  // namespace ph::trainer
