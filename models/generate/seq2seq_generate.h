// Generation with an encoder-decoder (t5, SEQ_2_SEQ_LM) and a soft-prompt injection: the
// encoder runs once over the input, then the decoder is KV-cached, with cross-attention
// to the encoder's output, from the model's decoder start token.
#pragma once

#include <cstdint>
#include <vector>

#include "models/engine/engine.h"
#include "models/generate/generate.h"

namespace ph {

struct Seq2SeqInput {
  // The encoder's input: ids, or virtual slots (prompt-like methods put slots 0..n-1 first).
  std::vector<int32_t> encoder;
  // Virtual slots the decoder reads before its start token (multitask prompt tuning on
  // an encoder-decoder: slots n..2n-1, as PEFT prepends them); usually empty.
  std::vector<int32_t> decoder_lead;
  // The prefix also reaches the encoder and the cross-attention (PassOptions's
  // prefix_all_attention; not PEFT's layout).
  bool prefix_all_attention = false;
};

// The decoder's output for `input`: at most options.max_new_tokens ids (fewer if the
// context fills up), ending with a stop id (options.stop_ids, e.g. stop_ids(config, ..):
// EOS) if one was produced. The injection's virtual tokens must be one shared set
// [1, r, dim] (a multitask caller passes its task's); its prefix reaches the decoder's
// self-attention as the training pass maps it. options.virtual_tokens is not used.
// Throws ph::Error for a token out of range or an injection that does not fit the model.
std::vector<int32_t> generate_seq2seq(const Model& model, const Injection& injection,
                                      const Seq2SeqInput& input, const GenerateOptions& options);

}  // namespace ph
