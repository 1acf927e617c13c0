#include "host/trainer/evaluation.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include <xtensor/xview.hpp>

#include "models/engine/engine.h"
#include "models/generate/generate.h"

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

// Mean NLL per sequence of `seqs` (each with its task) in batches.
std::vector<double> sequence_nll(const Model& model, host::MethodInstance& method,
                                 const std::vector<const Encoded*>& items, int batch_size,
                                 std::vector<int>* scored = nullptr) {
  std::vector<double> nll;
  for (size_t i0 = 0; i0 < items.size(); i0 += batch_size) {
    std::vector<const Encoded*> batch(items.begin() + i0,
                                      items.begin() + std::min(items.size(), i0 + batch_size));
    std::vector<Sequence> seqs;
    for (const Encoded* e : batch) seqs.push_back(e->sequence);
    const Injection inj = method.forward((int64_t)batch.size(), tasks_of(batch), false);
    TrainingPass pass(model);
    pass.forward(seqs, inj);
    nll.insert(nll.end(), pass.sequence_nll().begin(), pass.sequence_nll().end());
    if (scored)
      scored->insert(scored->end(), pass.sequence_scored().begin(), pass.sequence_scored().end());
  }
  return nll;
}

}  // namespace

std::vector<int32_t> generate_output(const Model& model, host::MethodInstance& method,
                                     const Encoded& example, int max_new_tokens,
                                     const std::vector<int32_t>& stop_ids) {
  std::vector<int64_t> tasks;
  if (example.task >= 0) tasks.push_back(example.task);
  const Injection inj = method.forward(1, tasks, false);
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

EvalResult evaluate(const Model& model, const Tokenizer& tokenizer, host::MethodInstance& method,
                    const std::vector<Example>& examples, const std::vector<Encoded>& encoded,
                    const EvalOptions& options) {
  EvalResult r;
  r.examples = (int)examples.size();
  std::vector<const Encoded*> items;
  for (const auto& e : encoded) items.push_back(&e);
  std::vector<int> scored;
  const auto nll = sequence_nll(model, method, items, options.batch_size, &scored);
  double total = 0.0;
  for (size_t i = 0; i < nll.size(); ++i) total += nll[i], r.scored_tokens += scored[i];
  r.loss = r.scored_tokens ? total / r.scored_tokens : 0.0;
  r.perplexity = std::exp(r.loss);
  r.has_outputs = !examples.empty() && examples[0].has_output;
  if (!r.has_outputs) return r;

  const std::vector<int32_t> stops = stop_ids(model.config, tokenizer.eos_id());
  if (options.generate) {           // exact match of the greedy continuation
    std::set<std::string> outputs;  // a classifier's labels, say
    for (const auto& ex : examples) outputs.insert(trim(ex.output));
    int hits = 0, known = 0;
    for (size_t i = 0; i < examples.size(); ++i) {
      const int want = (int)tokenizer.encode(examples[i].output).size();
      const auto ids = generate_output(model, method, encoded[i], want + 4, stops);
      r.generated.push_back(tokenizer.decode(ids));
      hits += trim(r.generated.back()) == trim(examples[i].output);
      known += outputs.count(trim(r.generated.back())) > 0;
    }
    r.exact_match = examples.empty() ? 0.0 : (double)hits / examples.size();
    r.known_output = examples.empty() ? 0.0 : (double)known / examples.size();
  }

  // rank accuracy: the expected output must be the most likely of the distinct outputs
  std::map<std::string, int> index;
  std::vector<std::string> candidates;
  for (const auto& ex : examples)
    if (index.emplace(ex.output, (int)candidates.size()).second) candidates.push_back(ex.output);
  r.rank_candidates = (int)candidates.size();
  if (candidates.size() < 2 || (int)candidates.size() > options.max_rank_candidates) return r;
  int hits = 0;
  for (size_t i = 0; i < examples.size(); ++i) {
    std::vector<Encoded> variants;  // the example with each candidate output
    for (const auto& c : candidates) {
      Example v = examples[i];
      v.output = c;
      variants.push_back(encode_example(v, tokenizer, options.parts, options.encode));
      variants.back().task = encoded[i].task;
    }
    std::vector<const Encoded*> ptrs;
    for (const auto& v : variants) ptrs.push_back(&v);
    const auto scores = sequence_nll(model, method, ptrs, (int)ptrs.size());
    const int best = (int)(std::min_element(scores.begin(), scores.end()) - scores.begin());
    hits += best == index[examples[i].output];
  }
  r.rank_accuracy = (double)hits / examples.size();
  return r;
}

}  // namespace ph::trainer
