#include <string>

#include <xtensor/xarray.hpp>

#include "models/common/error.h"
#include "models/engine/last_token_head.h"
#include "models/families/family.h"

namespace ph {

namespace {

void load_lm_head(TensorReader& w, Model& m, const std::string& dir,
                  const std::string& lm_head_name) {
  const ModelConfig& c = m.config;
  if (c.tied_head) {
    m.head = {m.token_embedding, nullptr, c.dim, c.vocab_size, false};
  } else if (!w.has(lm_head_name)) {
    throw Error(dir + ": tensor '" + lm_head_name +
                "' is missing and config.json does not tie the output head to the embedding "
                "(tie_word_embeddings is false)");
  } else {
    m.head = {w.keep(lm_head_name, {c.vocab_size, c.dim}), nullptr, c.dim, c.vocab_size, false};
  }
}

}  // namespace

void load_output_head(TensorReader& w, Model& m, const std::string& dir,
                      const std::string& lm_head_name) {
  const ModelConfig& c = m.config;
  if (c.task != TaskType::kSeqCls) return load_lm_head(w, m, dir, lm_head_name);
  // ...ForSequenceClassification: the `score` head; an LM head only when tied (it is then
  // the embedding; untied, the checkpoint has none).
  if (c.tied_head) m.head = {m.token_embedding, nullptr, c.dim, c.vocab_size, false};
  if (w.has("score.bias"))
    throw Error(dir + ": tensor 'score.bias' is present, but a decoder's classification head " +
                "'score' has no bias");
  const float* score = w.keep(kScoreWeight, {c.num_labels(), c.dim});
  xt::xarray<float> weight = xt::zeros<float>({(size_t)c.num_labels(), (size_t)c.dim});
  std::copy_n(score, weight.size(), weight.data());
  m.classifier[kScoreWeight] = std::move(weight);
}

}  // namespace ph
