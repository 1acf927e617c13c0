// An owned float buffer that can be kept alive by a Model (fused or converted weights).
#pragma once

#include <cstddef>
#include <vector>

#include "models/engine/model.h"

namespace ph {

struct FloatBuffer : WeightStorage {
  explicit FloatBuffer(size_t count) : values(count) {}
  std::vector<float> values;
};

}  // namespace ph
