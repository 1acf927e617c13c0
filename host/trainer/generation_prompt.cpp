#include "host/trainer/generation_prompt.h"

#include <xtensor/xview.hpp>

#include "models/common/error.h"

namespace ph::trainer {

namespace {

// The virtual tokens a template puts before anything else.
int leading_virtual_tokens(const std::vector<TemplatePart>& parts) {
  int n = 0;
  for (const TemplatePart& p : parts) {
    if (p.kind != TemplatePart::kVirtual) break;
    n += p.count;
  }
  return n;
}

// The request as one example: its prompt is the example's input, and the output is what
// generation produces (so only the prompt part of the encoding is kept).
Example request_example(const GenerationInput& input) {
  Example ex;
  ex.input = input.text;
  ex.ids = input.is_ids;
  ex.input_ids = input.ids;
  ex.has_output = true;
  return ex;
}

}  // namespace

std::vector<int32_t> base_generation_prompt(const ModelConfig& config, const Tokenizer* tokenizer,
                                            const GenerationInput& input) {
  if (input.is_ids) return input.ids;
  if (!tokenizer) throw Error("the prompt is text but the model has no tokenizer: give token ids");
  std::vector<int32_t> prompt = tokenizer->encode(input.text);
  const int bos = config.bos_id >= 0 ? config.bos_id : tokenizer->bos_id();
  if (input.bos && bos >= 0) prompt.insert(prompt.begin(), bos);
  return prompt;
}

GenerationEncoding::GenerationEncoding(const Model& model, const LoadedAdapter& adapter,
                                       const Tokenizer* tokenizer) {
  const ph_injection_spec spec = adapter.method->injection();
  const std::string& template_text = adapter.method->template_text();
  const auto parts = template_text.empty() ? default_template(spec.n_virtual)
                                           : parse_template(template_text, spec.n_virtual);
  n_virtual_ = spec.n_virtual;
  lead_ = leading_virtual_tokens(parts) == spec.n_virtual;
  encoding_ = task_encoding(model, model.config.task, spec, parts, tokenizer, 0);
}

std::vector<int64_t> request_tasks(const LoadedAdapter& adapter, const std::string& task,
                                   const std::string& what) {
  const bool per_task = adapter.method->injection().per_example != 0;
  if (task.empty() && !per_task) return {};
  if (task.empty())
    throw Error(adapter.info.dir + ": a multitask adapter needs " + what + " NAME or index");
  TaskMap map(adapter.info.task_names);
  Example ex;
  ex.task = task;
  return {map.id(ex, what, false)};
}

std::vector<int32_t> GenerationEncoding::encode(const GenerationInput& input,
                                                const Tokenizer* tokenizer,
                                                const std::string& what) const {
  TaskEncoding encoding = encoding_;
  if (!input.bos) encoding.encode.bos_id = -1;
  const Encoded e = encode_for_task(request_example(input), tokenizer, encoding, what);
  const auto& tokens = e.sequence.tokens;
  const int skip = lead_ ? n_virtual_ : 0;  // the injection cache holds them
  for (int k = 0; k < skip; ++k)
    if (k >= e.prompt_length || tokens[k] != virtual_slot(k))
      throw Error(what + ": the encoding does not start with the adapter's virtual tokens");
  return std::vector<int32_t>(tokens.begin() + skip, tokens.begin() + e.prompt_length);
}

Injection GenerationEncoding::cached(const Injection& injection) const {
  Injection out;
  out.prefix = injection.prefix;
  if (lead_) out.virtual_tokens = injection.virtual_tokens;
  out.adapter_prompts = injection.adapter_prompts;  // LLaMA-Adapter: every request reads them
  out.adapter_gates = injection.adapter_gates;
  return out;
}

xt::xtensor<float, 2> GenerationEncoding::prompt_rows(const Injection& injection) const {
  if (lead_ || n_virtual_ == 0) return {};
  return xt::view(injection.virtual_tokens, 0, xt::all(), xt::all());
}

}  // namespace ph::trainer
