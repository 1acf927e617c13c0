// A causal LM's prompt for generation with an adapter: encoded as training encodes an
// example's prompt part (the adapter's template, BOS), and the adapter's injection split
// into the part every request shares (its key/value prefix, and its virtual tokens when
// they all come first: an InjectionCache holds them) and the rows of virtual slots a
// template puts inside the prompt. `prompthost generate` and the server's adapter
// registry both encode through here, so that they cannot drift apart.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <xtensor/xtensor.hpp>

#include "host/trainer/adapter_loading.h"
#include "host/trainer/task_encoding.h"
#include "models/engine/model.h"
#include "models/tokenizer/tokenizer.h"

namespace ph::trainer {

// A request's prompt: text, or token ids used as given (no BOS added).
struct GenerationInput {
  bool is_ids = false;
  std::string text;
  std::vector<int32_t> ids;
  bool bos = true;  // text: prepend the model's BOS token, if it has one
};

// The prompt for the model alone: the text's tokens after BOS (the model's, else the
// tokenizer's), or the ids as given. Throws ph::Error for text without a tokenizer.
std::vector<int32_t> base_generation_prompt(const ModelConfig& config, const Tokenizer* tokenizer,
                                            const GenerationInput& input);

// The task ids forward() takes for a request of `adapter` naming `task` (a name or an
// index; "" for none): none for an adapter without tasks given none. Throws ph::Error
// naming the adapter and `what` (the option or field) when a multitask adapter gets no
// task, or an unknown one.
std::vector<int64_t> request_tasks(const LoadedAdapter& adapter, const std::string& task,
                                   const std::string& what);

// How the requests of one adapter (an opened CAUSAL_LM adapter) are encoded.
class GenerationEncoding {
 public:
  GenerationEncoding(const Model& model, const LoadedAdapter& adapter, const Tokenizer* tokenizer);

  // True when every virtual token precedes the prompt's text (PEFT's layout, and templates
  // that start with all of them): they are then the same for every request and belong in
  // the injection cache. False when a template puts some inside or after the text.
  bool virtual_tokens_lead() const { return lead_; }
  // The prompt's tokens after the shared part: ids, and virtual slots where the template
  // puts them. `what` names the prompt in errors (text without a tokenizer, token ids
  // with a template that places virtual tokens). Nothing is cut to fit the context.
  std::vector<int32_t> encode(const GenerationInput& input, const Tokenizer* tokenizer,
                              const std::string& what) const;
  // The injection's shared part, for InjectionCache: the prefix, and the virtual tokens
  // when they lead.
  Injection cached(const Injection& injection) const;
  // The rows [n, dim] of the virtual slots inside the prompt; empty when they lead.
  xt::xtensor<float, 2> prompt_rows(const Injection& injection) const;

 private:
  int n_virtual_ = 0;
  bool lead_ = true;
  TaskEncoding encoding_;
};

}  // namespace ph::trainer
