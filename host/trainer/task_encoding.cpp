#include "host/trainer/task_encoding.h"

#include <algorithm>

#include "models/common/error.h"

namespace ph::trainer {

namespace {

std::string place(const std::string& file, const Example& ex) {
  return file + ":" + std::to_string(ex.line);
}

void need_tokenizer(const Tokenizer* tokenizer, const std::string& where) {
  if (!tokenizer)
    throw Error(where +
                ": text data needs a tokenizer (the model folder has none; give "
                "--tokenizer, or write the line as token ids: \"input_ids\")");
}

std::vector<int32_t> text_ids(const std::string& text, const Tokenizer* tokenizer,
                              const std::string& where) {
  need_tokenizer(tokenizer, where);
  return tokenizer->encode(text);
}

// The layout without a template: virtual tokens (if any) first, then input and output.
bool prepended_layout(const std::vector<TemplatePart>& parts) {
  size_t i = !parts.empty() && parts[0].kind == TemplatePart::kVirtual ? 1 : 0;
  return parts.size() == i + 2 && parts[i].kind == TemplatePart::kInput &&
         parts[i + 1].kind == TemplatePart::kOutput;
}

void append_slots(std::vector<int32_t>& tokens, int first, int count) {
  for (int k = 0; k < count; ++k) tokens.push_back(virtual_slot(first + k));
}

// CAUSAL_LM: the template layout for text, the prepended layout for token ids.
Encoded encode_causal(const Example& ex, const Tokenizer* tokenizer, const TaskEncoding& e,
                      const std::string& where) {
  if (ex.has_label)
    throw Error(where +
                ": a \"label\" is classification data; the model is used as CAUSAL_LM "
                "(give \"output\" for a generation task)");
  if (!ex.ids) {
    need_tokenizer(tokenizer, where);
    return encode_example(ex, *tokenizer, e.parts, e.encode);
  }
  if (!prepended_layout(e.parts))
    throw Error(where +
                ": token-id data takes the virtual tokens first; the method's template "
                "places them elsewhere: write the line as text");
  Encoded out;
  Sequence& s = out.sequence;
  const int n = e.parts[0].kind == TemplatePart::kVirtual ? e.parts[0].count : 0;
  append_slots(s.tokens, 0, n);
  s.labels.assign(n, kIgnoreLabel);
  for (int32_t id : ex.input_ids) {
    s.tokens.push_back(id);
    s.labels.push_back(ex.has_output ? kIgnoreLabel : id);
  }
  out.prompt_length = (int)s.tokens.size();
  for (int32_t id : ex.output_ids) {
    s.tokens.push_back(id);
    s.labels.push_back(id);
  }
  return out;
}

// SEQ_2_SEQ_LM: encoder input and decoder targets.
Encoded encode_seq2seq(const Example& ex, const Tokenizer* tokenizer, const TaskEncoding& e,
                       const std::string& where) {
  if (ex.has_label)
    throw Error(where + ": a \"label\" is classification data; SEQ_2_SEQ_LM needs \"output\"");
  if (!ex.has_output)
    throw Error(where +
                ": SEQ_2_SEQ_LM needs an input and an output (\"input\" and \"output\", "
                "or \"input_ids\" and \"output_ids\")");
  std::vector<int32_t> input = ex.ids ? ex.input_ids : text_ids(ex.input, tokenizer, where);
  std::vector<int32_t> target = ex.ids ? ex.output_ids : text_ids(ex.output, tokenizer, where);
  if (!ex.ids) {
    input.insert(input.begin(), e.text_prefix.begin(), e.text_prefix.end());
    input.insert(input.end(), e.text_suffix.begin(), e.text_suffix.end());
    if (e.encode.eos_id >= 0) target.push_back(e.encode.eos_id);
  }
  if (target.empty()) throw Error(where + ": the output is empty: nothing to score");
  Encoded out;
  if (e.encode.max_length > 0 && (int)input.size() > e.encode.max_length) {
    out.truncated = (int)input.size() - e.encode.max_length;
    input.resize(e.encode.max_length);
  }
  Sequence& s = out.sequence;
  append_slots(s.tokens, 0, e.virtuals.encoder);
  s.tokens.insert(s.tokens.end(), input.begin(), input.end());
  append_slots(s.decoder_tokens, e.virtuals.encoder, e.virtuals.decoder);
  s.decoder_labels.assign(e.virtuals.decoder, kIgnoreLabel);
  s.decoder_tokens.push_back(e.decoder_start_id);  // shift right: start, then targets[:-1]
  s.decoder_tokens.insert(s.decoder_tokens.end(), target.begin(), target.end() - 1);
  s.decoder_labels.insert(s.decoder_labels.end(), target.begin(), target.end());
  out.prompt_length = (int)s.tokens.size();
  return out;
}

// SEQ_CLS: the classified text and its class.
Encoded encode_classification(const Example& ex, const Tokenizer* tokenizer, const TaskEncoding& e,
                              const std::string& where) {
  if (!ex.has_label)
    throw Error(where + ": SEQ_CLS needs a \"label\" (one of the model's classes: " + [&] {
      std::string all;
      for (const auto& l : e.labels) all += (all.empty() ? "" : ", ") + l;
      return all;
    }() + ")");
  Encoded out;
  Sequence& s = out.sequence;
  s.class_label = class_id(e.labels, ex.label, where);
  std::vector<int32_t> text = ex.ids ? ex.input_ids : text_ids(ex.input, tokenizer, where);
  const int room =
      e.encode.max_length - (ex.ids ? 0 : (int)(e.text_prefix.size() + e.text_suffix.size()));
  if (e.encode.max_length > 0 && (int)text.size() > std::max(room, 1)) {
    out.truncated = (int)text.size() - std::max(room, 1);
    text.resize(std::max(room, 1));
  }
  append_slots(s.tokens, 0, e.virtuals.encoder);
  if (!ex.ids) s.tokens.insert(s.tokens.end(), e.text_prefix.begin(), e.text_prefix.end());
  s.tokens.insert(s.tokens.end(), text.begin(), text.end());
  if (!ex.ids) s.tokens.insert(s.tokens.end(), e.text_suffix.begin(), e.text_suffix.end());
  out.prompt_length = (int)s.tokens.size();
  return out;
}

// The special tokens a tokenizer's post-processor puts around one text for `task`.
// TODO(h-tok): take them from the tokenizer's template (encode with special tokens:
// BERT's [CLS] ... [SEP], RoBERTa's <s> ... </s>, T5's ... </s>) once models/tokenizer
// offers it; until then the model's (or tokenizer's) BOS and EOS stand in for them.
void special_tokens(const Model& model, TaskType task, const Tokenizer* tokenizer,
                    TaskEncoding& e) {
  const ModelConfig& c = model.config;
  const int32_t bos = c.bos_id >= 0 ? c.bos_id : tokenizer ? tokenizer->bos_id() : -1;
  const int32_t eos = c.eos_id >= 0 ? c.eos_id : tokenizer ? tokenizer->eos_id() : -1;
  if (task == TaskType::kSeq2SeqLm) {  // T5: the input ends in </s>
    if (eos >= 0) e.text_suffix = {eos};
  } else if (task == TaskType::kSeqCls) {
    if (bos >= 0) e.text_prefix = {bos};
    if (eos >= 0 && c.stacks == Stacks::kEncoder) e.text_suffix = {eos};
  }
}

}  // namespace

int32_t class_id(const std::vector<std::string>& labels, const std::string& name,
                 const std::string& where) {
  const auto it = std::find(labels.begin(), labels.end(), name);
  if (it != labels.end()) return (int32_t)(it - labels.begin());
  std::string all;
  for (const auto& l : labels) all += (all.empty() ? "" : ", ") + l;
  throw Error(where + ": label \"" + name + "\" is not one of the model's classes (" + all + ")");
}

TaskEncoding task_encoding(const Model& model, TaskType task, const ph_injection_spec& spec,
                           const std::vector<TemplatePart>& parts, const Tokenizer* tokenizer,
                           int max_length) {
  const ModelConfig& c = model.config;
  TaskEncoding e;
  e.task = task;
  e.parts = parts;
  e.virtuals = virtual_layout(spec, task);
  e.encode.max_length = max_length;
  e.encode.bos_id = c.bos_id >= 0 ? c.bos_id : tokenizer ? tokenizer->bos_id() : -1;
  e.encode.eos_id = c.eos_id >= 0 ? c.eos_id : tokenizer ? tokenizer->eos_id() : -1;
  e.decoder_start_id = c.decoder_start_id >= 0 ? c.decoder_start_id : c.pad_id;
  if (task == TaskType::kSeq2SeqLm && e.decoder_start_id < 0)
    throw Error(
        "the model's config.json gives no decoder_start_token_id (nor pad_token_id): "
        "SEQ_2_SEQ_LM cannot start the decoder");
  e.labels = c.labels;
  special_tokens(model, task, tokenizer, e);
  return e;
}

Encoded encode_for_task(const Example& ex, const Tokenizer* tokenizer, const TaskEncoding& e,
                        const std::string& file) {
  const std::string where = place(file, ex);
  Encoded out;
  switch (e.task) {
    case TaskType::kCausalLm:
      out = encode_causal(ex, tokenizer, e, where);
      break;
    case TaskType::kSeq2SeqLm:
      out = encode_seq2seq(ex, tokenizer, e, where);
      break;
    case TaskType::kSeqCls:
      out = encode_classification(ex, tokenizer, e, where);
      break;
  }
  if (ex.ids && e.encode.max_length > 0) {
    int real = 0;
    for (int32_t t : out.sequence.tokens) real += !is_virtual(t);
    if (real > e.encode.max_length)
      throw Error(where + ": " + std::to_string(real) + " token ids, more than the " +
                  std::to_string(e.encode.max_length) + " that fit beside the method's tokens");
  }
  return out;
}

}  // namespace ph::trainer
