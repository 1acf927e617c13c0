// The input rows of the frozen model: a token's embedding or a virtual token's
// injected vector, scaled (gemma), plus (gpt2) the learned position embedding, and then
// (bloom) the embedding norm over every row.
#pragma once

#include <cstdint>

#include <xtensor/xtensor.hpp>

#include "models/engine/model.h"

namespace ph {

// out[dim] = (virtual_row if the token is a virtual slot, else the token's embedding)
//            · embed_scale + position embedding (gpt2).
// Virtual tokens are scaled like token embeddings: gemma multiplies all of inputs_embeds,
// and PEFT feeds the injection as inputs_embeds.
inline void embed_row(const Model& model, int32_t token, const float* virtual_row, int position,
                      float* out) {
  const int D = model.config.dim;
  const float scale = model.config.embed_scale;
  const float* src = virtual_row ? virtual_row : model.token_embedding + (size_t)token * D;
  for (int i = 0; i < D; ++i) out[i] = src[i] * scale;
  if (model.position_embedding) {
    const float* p = model.position_embedding + (size_t)position * D;
    for (int i = 0; i < D; ++i) out[i] += p[i];
  }
}

// config.embed_norm: the norm between embed_row's rows and the first layer (bloom's
// word_embeddings_layernorm), keeping what backward needs. Without it both are no-ops.
class InputNorm {
 public:
  // x [rows, dim] <- norm(x), in place.
  void forward(const Model& model, xt::xtensor<float, 2>& x);
  // dx: d loss / d (normed rows) -> d loss / d (embed_row's rows), in place. Needs forward.
  void backward(const Model& model, xt::xtensor<float, 2>& dx);

 private:
  xt::xtensor<float, 2> before_, scratch_;
  xt::xtensor<float, 1> mean_, rstd_;
};

// d loss / d (the injected vector of a virtual row) from d loss / d (embed_row's row):
// out[dim] += d · embed_scale.
inline void embed_row_backward(const Model& model, const float* d, float* out) {
  const int D = model.config.dim;
  const float scale = model.config.embed_scale;
  for (int i = 0; i < D; ++i) out[i] += d[i] * scale;
}

}  // namespace ph
