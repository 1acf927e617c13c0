// PLACEHOLDER (issue 14, to be replaced by the batched implementation): runs each item
// alone through extend(). Correct, not batched, and not yet independent of chunking.
#include "models/engine/batch_decode.h"

#include <string>

#include <xtensor/xview.hpp>

#include "models/common/error.h"

namespace ph {

class BatchDecoderImpl {
 public:
  explicit BatchDecoderImpl(const Model& model) : model(model) {}
  const Model& model;
};

BatchDecoder::BatchDecoder(const Model& model) : impl_(std::make_unique<BatchDecoderImpl>(model)) {}
BatchDecoder::~BatchDecoder() = default;

void BatchDecoder::step(const std::vector<DecodeItem>& items,
                        std::vector<xt::xtensor<float, 2>>& logits) {
  logits.resize(items.size());
  for (size_t i = 0; i < items.size(); ++i) {
    const DecodeItem& item = items[i];
    if (!item.cache) throw Error("decode item " + std::to_string(i) + " has no cache");
    if (item.all_logits) throw Error("BatchDecoder placeholder: all_logits is not implemented");
    const xt::xtensor<float, 1> last =
        extend(impl_->model, *item.cache, item.tokens,
               item.virtual_rows ? *item.virtual_rows : xt::xtensor<float, 2>{});
    logits[i] = xt::empty<float>({size_t(1), last.size()});
    xt::view(logits[i], 0, xt::all()) = last;
  }
}

double BatchDecoder::last_step_flops() const {
  return 0.0;
}

}  // namespace ph
