#include <cblas.h>

#include "models/engine/engine.h"

namespace ph {

void set_num_threads(int threads) {
  if (threads > 0) openblas_set_num_threads(threads);
}

}  // namespace ph
