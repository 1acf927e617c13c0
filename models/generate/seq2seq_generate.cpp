#include "models/generate/seq2seq_generate.h"

#include <algorithm>
#include <string>

#include <xtensor/xview.hpp>

#include "models/common/error.h"
#include "models/engine/seq2seq_decode.h"
#include "models/generate/sampler.h"

namespace ph {

std::vector<int32_t> generate_seq2seq(const Model& model, const Injection& injection,
                                      const Seq2SeqInput& input, const GenerateOptions& options) {
  const ModelConfig& c = model.config;
  if (c.stacks != Stacks::kEncoderDecoder)
    throw Error(std::string("generate_seq2seq: a ") + arch_name(c.arch) +
                " model has no encoder-decoder stacks");
  if (options.max_new_tokens < 0)
    throw Error("max_new_tokens must be >= 0, got " + std::to_string(options.max_new_tokens));
  const auto& virt = injection.virtual_tokens;
  if (virt.size() && (virt.shape(0) != 1 || virt.shape(2) != (size_t)c.dim))
    throw Error("generate_seq2seq: the injection's virtual tokens must be one shared set [1, n, " +
                std::to_string(c.dim) + "]");
  const xt::xtensor<float, 2> rows = virt.size() ? xt::xtensor<float, 2>(xt::view(virt, 0, xt::all(), xt::all()))
                                                 : xt::xtensor<float, 2>();
  const int n_prefix = injection.prefix.size() ? (int)injection.prefix.shape(3) : 0;
  const int used = n_prefix + (int)input.decoder_lead.size() + 1;  // the lead and the start token
  if (used > c.max_positions)
    throw Error("generate_seq2seq: the decoder's prefix and lead take " + std::to_string(used) +
                " positions, more than the model's context of " + std::to_string(c.max_positions));
  const int budget = std::min(options.max_new_tokens, c.max_positions - used + 1);
  std::vector<int32_t> out;
  if (budget == 0) return out;
  // The last generated token is never fed back, so it needs no room in the cache.
  Seq2SeqCache cache = encode(model, input.encoder, rows, injection.prefix, used + budget - 1,
                              input.prefix_all_attention);
  std::vector<int32_t> start = input.decoder_lead;
  start.push_back(c.decoder_start_id);
  Sampler sampler(options.sampling, options.seed);
  xt::xtensor<float, 1> logits = extend_decoder(model, cache, start, rows);
  for (;;) {
    const int32_t token = sampler.sample(logits);
    out.push_back(token);
    if (options.on_token) options.on_token(token, logits);
    const auto& stops = options.stop_ids;
    if (std::find(stops.begin(), stops.end(), token) != stops.end() || (int)out.size() == budget)
      break;
    logits = extend_decoder(model, cache, {token});
  }
  return out;
}

}  // namespace ph
