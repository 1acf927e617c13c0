// The order examples are visited in, and batches formed from it by count and token budget.
#pragma once

#include <cstdint>
#include <vector>

namespace ph::trainer {

// A permutation of 0..n-1 for an epoch, from (seed, epoch) alone: a resumed run visits
// the same examples in the same order without saving any generator state.
std::vector<int> epoch_order(int n, uint64_t seed, int epoch);

// Consecutive runs of `order`, each of at most `batch_size` examples and at most
// `max_tokens` tokens (lengths[i] per example; an example longer than the budget is a
// batch of its own). max_tokens <= 0: no token budget.
std::vector<std::vector<int>> make_batches(const std::vector<int>& order,
                                           const std::vector<int>& lengths, int batch_size,
                                           int max_tokens);

}  // namespace ph::trainer
