#include "host/trainer/trainer.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "host/plugin/method_options.h"
#include "host/plugin/plugin_discovery.h"
#include "host/trainer/adapter_files.h"
#include "host/trainer/batching.h"
#include "host/trainer/progress.h"
#include "host/trainer/run_files.h"
#include "models/common/error.h"
#include "models/tokenizer/tokenizer.h"

namespace ph::trainer {

namespace fs = std::filesystem;

// PEFT's adapter_config.json fields that are not method options (peft-spec §3): a
// --config file may carry them; they are the host's to write.
const std::vector<std::string> kPeftBaseFields = {"auto_mapping",
                                                  "base_model_name_or_path",
                                                  "inference_mode",
                                                  "modules_to_save",
                                                  "num_attention_heads",
                                                  "num_layers",
                                                  "num_transformer_submodules",
                                                  "peft_type",
                                                  "peft_version",
                                                  "revision",
                                                  "task_type",
                                                  "token_dim",
                                                  "tokenizer_name_or_path",
                                                  "tokenizer_kwargs"};

namespace {

// Every setting trainer_state.json keeps, listed once: to_json and from_json both walk
// this list (Config is TrainConfig or const TrainConfig).
template <class Config, class Visit>
void for_each_setting(Config& c, Visit&& visit) {
  visit("plugin", c.plugin);
  visit("plugin_paths", c.plugin_paths);
  visit("model", c.model);
  visit("tokenizer", c.tokenizer);
  visit("data", c.data);
  visit("eval_data", c.eval_data);
  visit("output_dir", c.output_dir);
  visit("method_config", c.method_config);
  visit("set", c.set);
  visit("epochs", c.epochs);
  visit("max_steps", c.max_steps);
  visit("batch_size", c.batch_size);
  visit("max_batch_tokens", c.max_batch_tokens);
  visit("grad_accum", c.grad_accum);
  visit("max_length", c.max_length);
  visit("lr", c.lr);
  visit("schedule", c.schedule);
  visit("warmup_ratio", c.warmup_ratio);
  visit("warmup_steps", c.warmup_steps);
  visit("weight_decay", c.adamw.weight_decay);
  visit("max_grad_norm", c.adamw.max_grad_norm);
  visit("seed", c.seed);
  visit("eval_every", c.eval_every);
  visit("patience", c.patience);
  visit("save_every", c.save_every);
  visit("log_every", c.log_every);
  visit("recompute", c.recompute);
  visit("eval_generate", c.eval_generate);
}

}  // namespace

nlohmann::json TrainConfig::to_json() const {
  nlohmann::json j = nlohmann::json::object();
  for_each_setting(*this, [&](const char* key, const auto& value) { j[key] = value; });
  return j;
}

TrainConfig TrainConfig::from_json(const nlohmann::json& j) {
  TrainConfig c;
  for_each_setting(c, [&](const char* key, auto& value) { j.at(key).get_to(value); });
  return c;
}

namespace {

using Clock = std::chrono::steady_clock;

struct Data {
  std::vector<Example> examples;
  std::vector<Encoded> encoded;
  std::vector<int> lengths;
  int truncated_examples = 0;
};

Data load_data(const std::string& path, const Tokenizer& tok,
               const std::vector<TemplatePart>& parts, const EncodeOptions& enc, TaskMap& tasks,
               bool learn_tasks, bool needs_tasks) {
  Data d;
  d.examples = read_jsonl(path);
  if (d.examples.empty()) throw Error(path + ": no examples");
  const std::vector<int64_t> task_ids = tasks.ids(d.examples, path, learn_tasks, needs_tasks);
  for (size_t i = 0; i < d.examples.size(); ++i) {
    Encoded e = encode_example(d.examples[i], tok, parts, enc);
    e.task = task_ids[i];
    d.truncated_examples += e.truncated > 0;
    d.lengths.push_back((int)e.sequence.tokens.size());
    d.encoded.push_back(std::move(e));
  }
  return d;
}

// The resume point and history a checkpoint keeps beside the parameters.
struct LoopState {
  int step = 0;
  int epoch = 0;
  int batch_index = 0;  // micro-batches of the current epoch already consumed
  double best_eval = INFINITY;
  int evals_without_improvement = 0;
  std::vector<nlohmann::json> metrics;  // metrics.jsonl lines
  nlohmann::json before = nullptr;      // evaluation before training

  nlohmann::json to_json() const {
    return {{"step", step},
            {"epoch", epoch},
            {"batch_index", batch_index},
            {"best_eval", std::isfinite(best_eval) ? nlohmann::json(best_eval) : nullptr},
            {"evals_without_improvement", evals_without_improvement},
            {"metrics", metrics},
            {"before", before}};
  }
  void from_json(const nlohmann::json& j) {
    step = j.at("step");
    epoch = j.at("epoch");
    batch_index = j.at("batch_index");
    best_eval = j.at("best_eval").is_null() ? INFINITY : j.at("best_eval").get<double>();
    evals_without_improvement = j.at("evals_without_improvement");
    metrics = j.at("metrics").get<std::vector<nlohmann::json>>();
    before = j.at("before");
  }
};

nlohmann::json eval_json(const EvalResult& r) {
  nlohmann::json j = {
      {"eval_loss", r.loss}, {"eval_perplexity", r.perplexity}, {"eval_examples", r.examples}};
  if (r.has_outputs) {
    j["exact_match"] = r.exact_match;
    if (r.rank_candidates >= 2) j["rank_accuracy"] = r.rank_accuracy;
  }
  return j;
}

EvalResult eval_from_json(const nlohmann::json& j) {
  EvalResult r;
  r.loss = j.value("eval_loss", 0.0);
  r.perplexity = j.value("eval_perplexity", 0.0);
  r.examples = j.value("eval_examples", 0);
  r.has_outputs = j.contains("exact_match");
  r.exact_match = j.value("exact_match", 0.0);
  r.rank_accuracy = j.value("rank_accuracy", 0.0);
  r.rank_candidates = j.contains("rank_accuracy") ? 2 : 0;
  return r;
}

std::string eval_line(const EvalResult& r) {
  char buf[200];
  int n = std::snprintf(buf, sizeof buf, "loss %.4f, perplexity %.2f", r.loss, r.perplexity);
  if (r.has_outputs)
    n += std::snprintf(buf + n, sizeof buf - n, ", exact match %.1f%%", 100 * r.exact_match);
  if (r.rank_candidates >= 2)
    std::snprintf(buf + n, sizeof buf - n, ", rank accuracy %.1f%%", 100 * r.rank_accuracy);
  return buf;
}

// The plugin of a resumed run. The run's file names its method (config.plugin); where
// plugins are found comes from the command line (--plugin-path, or a --plugin the user
// gives), never from the file.
std::shared_ptr<host::PluginLibrary> resumed_plugin(const std::string& saved,
                                                    const TrainConfig& given,
                                                    const std::string& state_file) {
  if (given.plugin.empty())
    return host::find_named_plugin(saved, state_file + ": field \"config.plugin\"",
                                   given.plugin_paths);
  auto library = host::find_plugin(given.plugin, given.plugin_paths);
  // A file saved by an older version may hold a path there: then the user's --plugin decides.
  if (host::is_method_name(saved.c_str()) && saved != library->name())
    throw Error(state_file + ": the run trains method \"" + saved + "\", but --plugin " +
                given.plugin + " is \"" + library->name() + "\"");
  return library;
}

}  // namespace

TrainSummary train(const TrainConfig& given, const std::string& resume_dir) {
  const auto t_start = Clock::now();
  TrainConfig cfg = given;
  LoopState loop;
  std::vector<std::string> task_names;
  nlohmann::json saved_options;
  if (!resume_dir.empty()) {  // the saved run's settings, continued in its own folder
    const nlohmann::json st = read_json((fs::path(resume_dir) / kTrainerStateFile).string());
    cfg = TrainConfig::from_json(st.at("config"));
    cfg.output_dir = resume_dir;
    cfg.threads = given.threads;
    cfg.quiet = given.quiet;
    cfg.stop_after = given.stop_after;
    loop.from_json(st.at("loop"));
    task_names = st.at("task_names").get<std::vector<std::string>>();
    saved_options = st.at("options");
  }
  if (cfg.data.empty()) throw Error("no training data (--data FILE)");
  if (cfg.output_dir.empty()) throw Error("no output folder (--output DIR)");
  set_num_threads(cfg.threads);

  const Model model = load_model(cfg.model);
  const auto tokenizer = load_tokenizer(cfg.tokenizer.empty() ? cfg.model : cfg.tokenizer);
  auto library =
      resume_dir.empty()
          ? host::find_plugin(cfg.plugin, cfg.plugin_paths)
          : resumed_plugin(cfg.plugin, given, (fs::path(resume_dir) / kTrainerStateFile).string());
  cfg.plugin = library->name();  // what the run's file records: the method, never a path
  cfg.plugin_paths = given.plugin_paths;
  const nlohmann::json options =
      resume_dir.empty() ? host::resolve_options(library->descriptor(), cfg.method_config, cfg.set,
                                                 kPeftBaseFields)
                         : saved_options;
  host::ModelHost model_host(model, tokenizer.get());
  host::MethodInstance method(library, model_host, options, cfg.seed);
  const ph_injection_spec spec = method.injection();

  // data
  const auto parts = method.template_text().empty()
                         ? default_template(spec.n_virtual)
                         : parse_template(method.template_text(), spec.n_virtual);
  EncodeOptions enc;
  const int room = model.config.max_positions - spec.n_virtual - spec.n_prefix;
  if (room <= 1) throw Error("the method's virtual tokens fill the model's context");
  enc.max_length = cfg.max_length > 0 ? std::min(cfg.max_length, room) : room;
  enc.bos_id = model.config.bos_id >= 0 ? model.config.bos_id : tokenizer->bos_id();
  enc.eos_id = model.config.eos_id >= 0 ? model.config.eos_id : tokenizer->eos_id();
  TaskMap tasks(task_names);
  const bool needs_tasks = spec.per_example != 0;
  Data train_data = load_data(cfg.data, *tokenizer, parts, enc, tasks, true, needs_tasks);
  Data eval_data;
  if (!cfg.eval_data.empty())
    eval_data = load_data(cfg.eval_data, *tokenizer, parts, enc, tasks, false, needs_tasks);
  task_names = tasks.names();

  // schedule
  const int n = (int)train_data.examples.size();
  const int micro_per_epoch = (int)make_batches(epoch_order(n, cfg.seed, 0), train_data.lengths,
                                                cfg.batch_size, cfg.max_batch_tokens)
                                  .size();
  const int accum = std::max(1, cfg.grad_accum);
  const int steps_per_epoch = (micro_per_epoch + accum - 1) / accum;
  const int total_steps =
      cfg.max_steps > 0 ? cfg.max_steps : steps_per_epoch * std::max(1, cfg.epochs);
  Schedule schedule;
  schedule.kind = parse_schedule(cfg.schedule);
  schedule.lr = cfg.lr;
  schedule.total_steps = total_steps;
  schedule.warmup_steps =
      cfg.warmup_steps >= 0 ? cfg.warmup_steps : (int)std::round(cfg.warmup_ratio * total_steps);

  auto params = method.parameters();
  std::vector<size_t> numels;
  std::vector<ParamRef> refs;
  for (const auto& p : params) {
    numels.push_back(p.numel);
    refs.push_back({p.value, p.grad, p.numel});
  }
  AdamW optimizer(cfg.adamw, numels);
  if (!resume_dir.empty())
    read_training_state((fs::path(resume_dir) / kTrainingStateFile).string(), method, optimizer);

  TrainSummary summary;
  summary.output_dir = cfg.output_dir;
  summary.plugin = library->descriptor().name;
  summary.trainable_parameters = method.parameter_count_total();
  summary.per_task = spec.per_example != 0;
  summary.task_names = task_names;
  summary.total_steps = total_steps;
  summary.truncated_examples = train_data.truncated_examples;
  Progress progress(total_steps, cfg.log_every, cfg.quiet);
  if (train_data.truncated_examples)
    progress.message(std::to_string(train_data.truncated_examples) + " of " + std::to_string(n) +
                     " training examples were cut to " + std::to_string(enc.max_length) +
                     " tokens");

  EvalOptions eval_options;
  eval_options.parts = parts;
  eval_options.encode = enc;
  eval_options.generate = cfg.eval_generate;
  auto run_eval = [&]() {
    return evaluate(model, *tokenizer, method, eval_data.examples, eval_data.encoded, eval_options);
  };
  if (!eval_data.examples.empty() && loop.before.is_null()) {
    const EvalResult before = run_eval();
    loop.before = eval_json(before);
    progress.message("before training: " + eval_line(before));
  }

  auto save = [&](bool with_adapter) {
    fs::create_directories(cfg.output_dir);
    if (with_adapter) write_adapter(cfg.output_dir, method, model.config, cfg.model, task_names);
    write_training_state((fs::path(cfg.output_dir) / kTrainingStateFile).string(), method,
                         optimizer);
    std::string lines;
    std::vector<CurvePoint> train_curve, eval_curve;
    for (const auto& m : loop.metrics) {
      lines += m.dump() + "\n";
      if (m.contains("loss"))
        train_curve.push_back({m["step"].get<double>(), m["loss"].get<double>()});
      if (m.contains("eval_loss"))
        eval_curve.push_back({m["step"].get<double>(), m["eval_loss"].get<double>()});
    }
    write_file_atomic((fs::path(cfg.output_dir) / "metrics.jsonl").string(), lines);
    write_file_atomic((fs::path(cfg.output_dir) / "loss_curve.svg").string(),
                      loss_curve_svg(train_curve, eval_curve));
    write_json_atomic((fs::path(cfg.output_dir) / kTrainerStateFile).string(),
                      {{"config", cfg.to_json()},
                       {"options", options},
                       {"task_names", task_names},
                       {"total_steps", total_steps},
                       {"loop", loop.to_json()}});
  };

  // the loop
  PassOptions pass_options;
  pass_options.recompute = cfg.recompute;
  TrainingPass pass(model, pass_options);
  const auto t_loop = Clock::now();
  progress.restart(loop.step);
  long tokens_seen = 0;
  bool stop = false;
  while (loop.step < total_steps && !stop) {
    const auto batches = make_batches(epoch_order(n, cfg.seed, loop.epoch), train_data.lengths,
                                      cfg.batch_size, cfg.max_batch_tokens);
    while (loop.step < total_steps && loop.batch_index < (int)batches.size() && !stop) {
      method.zero_grad();
      const int micro = std::min(accum, (int)batches.size() - loop.batch_index);
      double loss_sum = 0.0;
      for (int a = 0; a < micro; ++a) {
        const auto& idx = batches[loop.batch_index++];
        std::vector<Sequence> seqs;
        std::vector<int64_t> task_ids;
        for (int i : idx) {
          seqs.push_back(train_data.encoded[i].sequence);
          if (train_data.encoded[i].task >= 0) task_ids.push_back(train_data.encoded[i].task);
          tokens_seen += train_data.lengths[i];
        }
        if (task_ids.size() != idx.size()) task_ids.clear();
        const Injection inj = method.forward((int64_t)idx.size(), task_ids, true, loop.step);
        loss_sum += pass.forward(seqs, inj);
        InjectionGrad grad;
        pass.backward(grad);
        if (micro > 1) {  // the step's gradient is the mean over its micro-batches
          grad.virtual_tokens /= (float)micro;
          grad.prefix /= (float)micro;
        }
        method.backward((int64_t)idx.size(), task_ids, grad, loop.step);
      }
      const double lr = schedule.at(loop.step);
      const double grad_norm = optimizer.update(refs, lr, loop.step + 1);
      ++loop.step;
      const double loss = loss_sum / micro;
      summary.last_loss = loss;
      const double elapsed = std::chrono::duration<double>(Clock::now() - t_loop).count();
      const double tps = elapsed > 0 ? tokens_seen / elapsed : 0.0;
      loop.metrics.push_back({{"step", loop.step},
                              {"epoch", loop.epoch},
                              {"loss", loss},
                              {"lr", lr},
                              {"grad_norm", grad_norm},
                              {"tokens_per_s", tps}});
      char status[120];
      std::snprintf(status, sizeof status, "loss %.4f lr %.2e %.0f tok/s", loss, lr, tps);
      progress.update(loop.step, status);

      if (cfg.eval_every > 0 && loop.step % cfg.eval_every == 0 && !eval_data.examples.empty() &&
          loop.step < total_steps) {
        const EvalResult r = run_eval();
        nlohmann::json m = eval_json(r);
        m["step"] = loop.step;
        loop.metrics.push_back(m);
        progress.message("step " + std::to_string(loop.step) + ": " + eval_line(r));
        if (r.loss < loop.best_eval - 1e-6) {
          loop.best_eval = r.loss;
          loop.evals_without_improvement = 0;
        } else if (cfg.patience > 0 && ++loop.evals_without_improvement >= cfg.patience) {
          progress.message("early stopping: no improvement in " + std::to_string(cfg.patience) +
                           " evaluations");
          summary.stopped_early = stop = true;
        }
      }
      if (cfg.save_every > 0 && loop.step % cfg.save_every == 0) save(true);
      if (cfg.stop_after > 0 && loop.step == cfg.stop_after && loop.step < total_steps) {
        save(true);
        progress.message("stopped at step " + std::to_string(loop.step) + " (--stop-after)");
        summary.steps = loop.step;
        summary.seconds = std::chrono::duration<double>(Clock::now() - t_start).count();
        return summary;
      }
    }
    if (loop.batch_index >= (int)batches.size()) {
      ++loop.epoch;
      loop.batch_index = 0;
    }
  }
  progress.finish_line();
  summary.steps = loop.step;

  if (!eval_data.examples.empty()) {
    summary.evaluated = true;
    summary.before = eval_from_json(loop.before);
    summary.after = run_eval();
    nlohmann::json m = eval_json(summary.after);
    m["step"] = loop.step;
    loop.metrics.push_back(m);
    progress.message("after training: " + eval_line(summary.after));
  }
  save(true);
  summary.seconds = std::chrono::duration<double>(Clock::now() - t_start).count();
  return summary;
}

}  // namespace ph::trainer
