// The projections of a layer as single GEMMs over all rows of a batch (OpenBLAS).
// Only the input gradient exists in backward: weights are frozen.
#pragma once

#include "models/engine/model.h"

namespace ph {

// y[rows, lin.out] = x[rows, lin.in] · Wᵀ + b. Leading dimensions are row strides.
void linear_forward(const Linear& lin, int rows, const float* x, int ldx, float* y, int ldy);

// dx[rows, lin.in] (= or +=, per `accumulate`) dy[rows, lin.out] · W.
void linear_backward_input(const Linear& lin, int rows, const float* dy, int lddy, float* dx,
                           int lddx, bool accumulate);

}  // namespace ph
