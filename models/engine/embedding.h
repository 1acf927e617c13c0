// The input rows of the frozen model: a token's embedding or a virtual token's
// injected vector, plus (gpt2) the learned position embedding.
#pragma once

#include <cstdint>

#include "models/engine/model.h"

namespace ph {

// out[dim] = (virtual_row if the token is a virtual slot, else the token's embedding)
//            + position embedding (gpt2).
inline void embed_row(const Model& model, int32_t token, const float* virtual_row, int position,
                      float* out) {
  const int D = model.config.dim;
  const float* src = virtual_row ? virtual_row : model.token_embedding + (size_t)token * D;
  for (int i = 0; i < D; ++i) out[i] = src[i];
  if (model.position_embedding) {
    const float* p = model.position_embedding + (size_t)position * D;
    for (int i = 0; i < D; ++i) out[i] += p[i];
  }
}

}  // namespace ph
