#include "host/trainer/evaluation.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include <xtensor/xview.hpp>

#include "models/engine/engine.h"
#include "models/generate/generate.h"
#include "models/generate/seq2seq_generate.h"

namespace ph::trainer {

namespace {

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t\r\n") - b + 1);
}

std::vector<int64_t> tasks_of(const std::vector<const Encoded*>& batch) {
  std::vector<int64_t> tasks;
  for (const Encoded* e : batch)
    if (e->task >= 0) tasks.push_back(e->task);
  if (tasks.size() != batch.size()) tasks.clear();
  return tasks;
}

// Mean NLL per sequence of `seqs` (each with its task) in batches; with `logits`, each
// sequence's logits too (a classifier's [1, classes]).
std::vector<double> sequence_nll(const Model& model, host::MethodInstance& method,
                                 const std::vector<const Encoded*>& items, int batch_size,
                                 const NamedTensors* head, std::vector<int>* scored = nullptr,
                                 std::vector<xt::xtensor<float, 2>>* logits = nullptr) {
  std::vector<double> nll;
  for (size_t i0 = 0; i0 < items.size(); i0 += batch_size) {
    std::vector<const Encoded*> batch(items.begin() + i0,
                                      items.begin() + std::min(items.size(), i0 + batch_size));
    std::vector<Sequence> seqs;
    for (const Encoded* e : batch) seqs.push_back(e->sequence);
    Injection inj = method.forward((int64_t)batch.size(), tasks_of(batch), false);
    if (head) inj.head = *head;
    PassOptions options;
    options.all_logits = logits != nullptr;
    TrainingPass pass(model, options);
    pass.forward(seqs, inj);
    nll.insert(nll.end(), pass.sequence_nll().begin(), pass.sequence_nll().end());
    if (scored)
      scored->insert(scored->end(), pass.sequence_scored().begin(), pass.sequence_scored().end());
    if (logits) logits->insert(logits->end(), pass.logits().begin(), pass.logits().end());
  }
  return nll;
}

// Accuracy, macro-F1 and the confusion matrix of the predicted classes.
void classification_metrics(const std::vector<const Encoded*>& items, EvalResult& r) {
  const size_t k = r.labels.size();
  r.confusion.assign(k, std::vector<int>(k, 0));
  int right = 0;
  for (size_t i = 0; i < items.size(); ++i) {
    const int want = items[i]->sequence.class_label, got = r.predicted[i];
    if (want < 0 || want >= (int)k) continue;
    ++r.confusion[want][got];
    right += want == got;
  }
  r.accuracy = items.empty() ? 0.0 : (double)right / items.size();
  double f1_sum = 0.0;
  int classes = 0;  // those in the data or the predictions (scikit-learn's default labels)
  for (size_t c = 0; c < k; ++c) {
    int predicted = 0, actual = 0;
    for (size_t o = 0; o < k; ++o) predicted += r.confusion[o][c], actual += r.confusion[c][o];
    if (predicted + actual == 0) continue;
    f1_sum += 2.0 * r.confusion[c][c] / (predicted + actual);
    ++classes;
  }
  r.macro_f1 = classes ? f1_sum / classes : 0.0;
}

std::string ids_text(const std::vector<int32_t>& ids) {
  std::string s;
  for (int32_t id : ids) s += (s.empty() ? "" : " ") + std::to_string(id);
  return s;
}

// Exact match of each example's greedy output (text data: trimmed text; token-id data:
// the ids, without a final stop token in the expected ones).
void exact_match(const Model& model, const Tokenizer* tokenizer, host::MethodInstance& method,
                 const std::vector<Example>& examples, const std::vector<Encoded>& encoded,
                 EvalResult& r) {
  const std::vector<int32_t> stops = stop_ids(model.config, tokenizer ? tokenizer->eos_id() : -1);
  std::set<std::string> outputs;  // a classifier's labels, say
  for (const auto& ex : examples)
    outputs.insert(ex.ids ? ids_text(ex.output_ids) : trim(ex.output));
  int hits = 0, known = 0;
  for (size_t i = 0; i < examples.size(); ++i) {
    const Example& ex = examples[i];
    std::string want;
    int budget = 0;
    if (ex.ids) {
      std::vector<int32_t> expected = ex.output_ids;
      if (!expected.empty() && std::count(stops.begin(), stops.end(), expected.back()))
        expected.pop_back();
      want = ids_text(expected);
      budget = (int)expected.size() + 1;
    } else {
      want = trim(ex.output);
      budget = (int)tokenizer->encode(ex.output).size() + 4;
    }
    const auto ids = generate_output(model, method, encoded[i], budget, stops);
    r.generated.push_back(ex.ids ? ids_text(ids) : tokenizer->decode(ids));
    const std::string got = ex.ids ? r.generated.back() : trim(r.generated.back());
    hits += got == want;
    known += outputs.count(got) > 0;
  }
  r.exact_match = examples.empty() ? 0.0 : (double)hits / examples.size();
  r.known_output = examples.empty() ? 0.0 : (double)known / examples.size();
}

}  // namespace

std::vector<int32_t> generate_output(const Model& model, host::MethodInstance& method,
                                     const Encoded& example, int max_new_tokens,
                                     const std::vector<int32_t>& stop_ids) {
  std::vector<int64_t> tasks;
  if (example.task >= 0) tasks.push_back(example.task);
  const Injection inj = method.forward(1, tasks, false);
  if (model.config.task == TaskType::kSeq2SeqLm) {
    // the encoder's input as trained; the decoder starts from its virtual lead (multitask)
    Seq2SeqInput input;
    input.encoder = example.sequence.tokens;
    for (int32_t t : example.sequence.decoder_tokens)
      if (is_virtual(t)) input.decoder_lead.push_back(t);
    GenerateOptions options;
    options.max_new_tokens = max_new_tokens;
    options.sampling.temperature = 0.0f;  // greedy
    options.stop_ids = stop_ids;
    std::vector<int32_t> out = generate_seq2seq(model, inj, input, options);
    if (!out.empty() && std::count(stop_ids.begin(), stop_ids.end(), out.back())) out.pop_back();
    return out;
  }
  std::vector<int32_t> prompt(example.sequence.tokens.begin(),
                              example.sequence.tokens.begin() + example.prompt_length);
  const int n_prefix = inj.prefix.size() ? (int)inj.prefix.shape(3) : 0;
  const int capacity =
      std::min(model.config.max_positions, n_prefix + (int)prompt.size() + max_new_tokens);
  KVCache cache = make_kv_cache(model, capacity);
  append_prefix(cache, inj.prefix);
  xt::xtensor<float, 2> virtual_rows;
  if (inj.virtual_tokens.size())
    virtual_rows = xt::view(inj.virtual_tokens, 0, xt::all(), xt::all());
  std::vector<int32_t> out;
  xt::xtensor<float, 1> logits = extend(model, cache, prompt, virtual_rows);
  while ((int)out.size() < max_new_tokens) {
    const int32_t next =
        (int32_t)std::distance(logits.begin(), std::max_element(logits.begin(), logits.end()));
    if (std::find(stop_ids.begin(), stop_ids.end(), next) != stop_ids.end()) break;
    out.push_back(next);
    if (cache.length >= cache.capacity) break;
    logits = extend(model, cache, {next});
  }
  return out;
}

EvalResult evaluate(const Model& model, const Tokenizer* tokenizer, host::MethodInstance& method,
                    const std::vector<Example>& examples, const std::vector<Encoded>& encoded,
                    const EvalOptions& options) {
  EvalResult r;
  r.examples = (int)examples.size();
  std::vector<const Encoded*> items;
  for (const auto& e : encoded) items.push_back(&e);
  std::vector<int> scored;
  r.classification = model.config.task == TaskType::kSeqCls;
  std::vector<xt::xtensor<float, 2>> logits;
  const auto nll = sequence_nll(model, method, items, options.batch_size, options.head, &scored,
                                r.classification ? &logits : nullptr);
  double total = 0.0;
  for (size_t i = 0; i < nll.size(); ++i) total += nll[i], r.scored_tokens += scored[i];
  r.loss = r.scored_tokens ? total / r.scored_tokens : 0.0;
  r.perplexity = std::exp(r.loss);
  if (r.classification) {
    r.labels = model.config.labels;
    for (const auto& l : logits)
      r.predicted.push_back((int)std::distance(l.begin(), std::max_element(l.begin(), l.end())));
    classification_metrics(items, r);
    return r;
  }
  r.has_outputs = !examples.empty() && examples[0].has_output;
  if (!r.has_outputs) return r;

  if (options.generate) exact_match(model, tokenizer, method, examples, encoded, r);

  // rank accuracy: the expected output must be the most likely of the distinct outputs
  std::map<std::string, int> index;  // by the output's text (or ids)
  std::vector<Example> candidates;
  std::vector<int> answer;
  for (const auto& ex : examples) {
    const std::string key = ex.ids ? "ids " + ids_text(ex.output_ids) : ex.output;
    const auto added = index.emplace(key, (int)candidates.size());
    if (added.second) candidates.push_back(ex);
    answer.push_back(added.first->second);
  }
  r.rank_candidates = (int)candidates.size();
  if (candidates.size() < 2 || (int)candidates.size() > options.max_rank_candidates) return r;
  int hits = 0;
  for (size_t i = 0; i < examples.size(); ++i) {
    std::vector<Encoded> variants;  // the example with each candidate output
    for (const auto& c : candidates) {
      Example v = examples[i];
      v.output = c.output;
      v.output_ids = c.output_ids;
      variants.push_back(encode_for_task(v, tokenizer, options.encoding, "candidate"));
      variants.back().task = encoded[i].task;
    }
    std::vector<const Encoded*> ptrs;
    for (const auto& v : variants) ptrs.push_back(&v);
    const auto scores = sequence_nll(model, method, ptrs, (int)ptrs.size(), options.head);
    const int best = (int)(std::min_element(scores.begin(), scores.end()) - scores.begin());
    hits += best == answer[i];
  }
  r.rank_accuracy = (double)hits / examples.size();
  return r;
}

}  // namespace ph::trainer
