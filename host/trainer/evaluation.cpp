#include "host/trainer/evaluation.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include <xtensor/xview.hpp>

#include <nlohmann/json.hpp>

#include "host/trainer/token_kinds.h"
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

// Mean NLL per sequence of `seqs` (each with its task) in batches, scored as the method
// scores them (score_labels, with BOS `bos_id`); with `logits`, each sequence's logits
// too (a classifier's [1, classes]).
std::vector<double> sequence_nll(const Model& model, host::MethodInstance& method,
                                 const std::vector<const Encoded*>& items, int batch_size,
                                 const NamedTensors* head, int32_t bos_id,
                                 std::vector<int>* scored = nullptr,
                                 std::vector<xt::xtensor<float, 2>>* logits = nullptr) {
  std::vector<double> nll;
  for (size_t i0 = 0; i0 < items.size(); i0 += batch_size) {
    std::vector<const Encoded*> batch(items.begin() + i0,
                                      items.begin() + std::min(items.size(), i0 + batch_size));
    std::vector<Sequence> seqs;
    for (const Encoded* e : batch) seqs.push_back(e->sequence);
    Injection inj = method.forward((int64_t)batch.size(), tasks_of(batch), false);
    if (head) inj.head = *head;
    if (model.config.task == TaskType::kCausalLm && method.scores_labels())
      method.score_labels(seqs, batch_token_kinds(seqs, bos_id), tasks_of(batch), 0);
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

// What evaluation finds for one example; the result is a sum over these in example
// order, so examples can be evaluated in parts (by the ranks of a distributed run).
struct ExampleEval {
  double nll = 0.0;  // summed over its scored tokens
  int scored = 0;
  int predicted = -1;  // SEQ_CLS
  std::string generated;
  bool hit = false, known = false, rank_hit = false;
};

nlohmann::json to_json(const ExampleEval& e) {
  return {e.nll, e.scored, e.predicted, e.generated, e.hit, e.known, e.rank_hit};
}

ExampleEval example_from_json(const nlohmann::json& j) {
  ExampleEval e;
  e.nll = j.at(0).get<double>();
  e.scored = j.at(1).get<int>();
  e.predicted = j.at(2).get<int>();
  e.generated = j.at(3).get<std::string>();
  e.hit = j.at(4).get<bool>();
  e.known = j.at(5).get<bool>();
  e.rank_hit = j.at(6).get<bool>();
  return e;
}

// What the examples' evaluations share: the outputs of the whole data (exact match asks
// whether a generated output is one of them; rank accuracy ranks them all).
struct EvalData {
  std::set<std::string> outputs;
  std::vector<Example> candidates;
  std::vector<int> answer;  // per example: its output's candidate
};

EvalData eval_data(const std::vector<Example>& examples) {
  EvalData d;
  std::map<std::string, int> index;  // by the output's text (or ids)
  for (const auto& ex : examples) {
    d.outputs.insert(ex.ids ? ids_text(ex.output_ids) : trim(ex.output));
    const std::string key = ex.ids ? "ids " + ids_text(ex.output_ids) : ex.output;
    const auto added = index.emplace(key, (int)d.candidates.size());
    if (added.second) d.candidates.push_back(ex);
    d.answer.push_back(added.first->second);
  }
  return d;
}

// Exact match of example i's greedy output (text data: trimmed text; token-id data: the
// ids, without a final stop token in the expected ones).
void exact_match(const Model& model, const Tokenizer* tokenizer, host::MethodInstance& method,
                 const Example& ex, const Encoded& encoded, const EvalData& data,
                 const std::vector<int32_t>& stops, ExampleEval& r) {
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
  const auto ids = generate_output(model, method, encoded, budget, stops);
  r.generated = ex.ids ? ids_text(ids) : tokenizer->decode(ids);
  const std::string got = ex.ids ? r.generated : trim(r.generated);
  r.hit = got == want;
  r.known = data.outputs.count(got) > 0;
}

// Rank accuracy of example i: is its expected output the most likely of all candidates?
bool rank_hit(const Model& model, const Tokenizer* tokenizer, host::MethodInstance& method,
              const Example& ex, const Encoded& encoded, int answer, const EvalData& data,
              const EvalOptions& options) {
  std::vector<Encoded> variants;  // the example with each candidate output
  for (const auto& c : data.candidates) {
    Example v = ex;
    v.output = c.output;
    v.output_ids = c.output_ids;
    variants.push_back(encode_for_task(v, tokenizer, options.encoding, "candidate"));
    variants.back().task = encoded.task;
  }
  std::vector<const Encoded*> ptrs;
  for (const auto& v : variants) ptrs.push_back(&v);
  const auto scores = sequence_nll(model, method, ptrs, (int)ptrs.size(), options.head,
                                   options.encoding.encode.bos_id);
  return (int)(std::min_element(scores.begin(), scores.end()) - scores.begin()) == answer;
}

bool ranks_candidates(const EvalData& data, const EvalOptions& options) {
  return data.candidates.size() >= 2 && (int)data.candidates.size() <= options.max_rank_candidates;
}

// Examples [begin, end) evaluated.
std::vector<ExampleEval> evaluate_examples(const Model& model, const Tokenizer* tokenizer,
                                           host::MethodInstance& method,
                                           const std::vector<Example>& examples,
                                           const std::vector<Encoded>& encoded,
                                           const EvalOptions& options, const EvalData& data,
                                           size_t begin, size_t end) {
  std::vector<const Encoded*> items;
  for (size_t i = begin; i < end; ++i) items.push_back(&encoded[i]);
  std::vector<int> scored;
  const bool classification = model.config.task == TaskType::kSeqCls;
  std::vector<xt::xtensor<float, 2>> logits;
  const auto nll =
      sequence_nll(model, method, items, options.batch_size, options.head,
                   options.encoding.encode.bos_id, &scored, classification ? &logits : nullptr);
  std::vector<ExampleEval> out(end - begin);
  for (size_t k = 0; k < out.size(); ++k) {
    out[k].nll = nll[k];
    out[k].scored = scored[k];
    if (classification)
      out[k].predicted = (int)std::distance(logits[k].begin(),
                                            std::max_element(logits[k].begin(), logits[k].end()));
  }
  const bool has_outputs = !examples.empty() && examples[0].has_output;
  if (classification || !has_outputs) return out;
  const std::vector<int32_t> stops = stop_ids(model.config, tokenizer ? tokenizer->eos_id() : -1);
  for (size_t i = begin; i < end; ++i) {
    ExampleEval& r = out[i - begin];
    if (options.generate)
      exact_match(model, tokenizer, method, examples[i], encoded[i], data, stops, r);
    if (ranks_candidates(data, options))
      r.rank_hit = rank_hit(model, tokenizer, method, examples[i], encoded[i], data.answer[i], data,
                            options);
  }
  return out;
}

// The result of every example's evaluation, summed in example order.
EvalResult aggregate(const Model& model, const std::vector<Example>& examples,
                     const std::vector<Encoded>& encoded, const EvalOptions& options,
                     const EvalData& data, const std::vector<ExampleEval>& each) {
  EvalResult r;
  r.examples = (int)examples.size();
  double total = 0.0;
  for (const ExampleEval& e : each) total += e.nll, r.scored_tokens += e.scored;
  r.loss = r.scored_tokens ? total / r.scored_tokens : 0.0;
  r.perplexity = std::exp(r.loss);
  r.classification = model.config.task == TaskType::kSeqCls;
  if (r.classification) {
    r.labels = model.config.labels;
    std::vector<const Encoded*> items;
    for (const auto& e : encoded) items.push_back(&e);
    for (const ExampleEval& e : each) r.predicted.push_back(e.predicted);
    classification_metrics(items, r);
    return r;
  }
  r.has_outputs = !examples.empty() && examples[0].has_output;
  if (!r.has_outputs) return r;
  const double n = (double)examples.size();
  if (options.generate) {
    int hits = 0, known = 0;
    for (const ExampleEval& e : each) {
      r.generated.push_back(e.generated);
      hits += e.hit;
      known += e.known;
    }
    r.exact_match = hits / n;
    r.known_output = known / n;
  }
  r.rank_candidates = (int)data.candidates.size();
  if (!ranks_candidates(data, options)) return r;
  int hits = 0;
  for (const ExampleEval& e : each) hits += e.rank_hit;
  r.rank_accuracy = hits / n;
  return r;
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
  append_adapters(model, cache, inj);
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
                    const EvalOptions& options, Ranks* ranks) {
  const EvalData data = eval_data(examples);
  const size_t n = examples.size();
  if (!ranks || !ranks->distributed())
    return aggregate(
        model, examples, encoded, options, data,
        evaluate_examples(model, tokenizer, method, examples, encoded, options, data, 0, n));
  // Consecutive parts of the examples, one per rank, then every rank's records to all.
  const size_t size = ranks->size(), rank = ranks->rank();
  const auto mine = evaluate_examples(model, tokenizer, method, examples, encoded, options, data,
                                      n * rank / size, n * (rank + 1) / size);
  nlohmann::json records = nlohmann::json::array();
  for (const ExampleEval& e : mine) records.push_back(to_json(e));
  std::vector<ExampleEval> each;
  for (const std::string& part : ranks->gather(records.dump()))
    for (const auto& j : nlohmann::json::parse(part)) each.push_back(example_from_json(j));
  return aggregate(model, examples, encoded, options, data, each);
}

}  // namespace ph::trainer
