// The kind of each token of a CAUSAL_LM example as the ABI's ph_scored_sequence.kinds
// wants it (PH_TOKEN_*), derived from the encoded sequence: virtual slots and BOS are
// PH_TOKEN_OTHER, scored tokens (the output, or every token of text data) PH_TOKEN_OUTPUT,
// the rest (the input and any template text around it) PH_TOKEN_INPUT. The encoding does
// not keep template text apart from the input, so no token is a template kind.
#pragma once

#include <cstdint>
#include <vector>

#include "host/trainer/dataset.h"

namespace ph::trainer {

std::vector<int64_t> token_kinds(const Sequence& sequence, int32_t bos_id);

// The kinds of every sequence of a batch.
std::vector<std::vector<int64_t>> batch_token_kinds(const std::vector<Sequence>& batch,
                                                    int32_t bos_id);

}  // namespace ph::trainer
