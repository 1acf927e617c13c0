#include "host/trainer/trainer.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <optional>

#include "host/plugin/method_options.h"
#include "host/plugin/plugin_discovery.h"
#include "host/trainer/adapter_files.h"
#include "host/trainer/batching.h"
#include "host/trainer/checkpoint.h"
#include "host/trainer/data_tokenizer.h"
#include "host/trainer/distillation.h"
#include "host/trainer/json_fields.h"
#include "host/trainer/loop_state.h"
#include "host/trainer/option_checks.h"
#include "host/trainer/progress.h"
#include "host/trainer/ranks.h"
#include "host/trainer/run_files.h"
#include "host/trainer/run_folder.h"
#include "host/trainer/run_inputs.h"
#include "host/trainer/task_encoding.h"
#include "host/trainer/token_kinds.h"
#include "host/trainer/trained_head.h"
#include "models/common/error.h"
#include "models/tokenizer/tokenizer.h"

namespace ph::trainer {

namespace fs = std::filesystem;

namespace {

using Clock = std::chrono::steady_clock;

struct Data {
  std::vector<Example> examples;
  std::vector<Encoded> encoded;
  std::vector<int> lengths;
  int truncated_examples = 0;
};

Data read_data(const std::string& path) {
  Data d;
  d.examples = read_jsonl(path);
  if (d.examples.empty()) throw Error(path + ": no examples");
  return d;
}

void encode_data(Data& d, const std::string& path, const Tokenizer* tok,
                 const TaskEncoding& encoding, TaskMap& tasks, bool learn_tasks, bool needs_tasks) {
  const std::vector<int64_t> task_ids = tasks.ids(d.examples, path, learn_tasks, needs_tasks);
  for (size_t i = 0; i < d.examples.size(); ++i) {
    Encoded e = encode_for_task(d.examples[i], tok, encoding, path);
    e.task = task_ids[i];
    d.truncated_examples += e.truncated > 0;
    d.lengths.push_back((int)e.sequence.tokens.size());
    d.encoded.push_back(std::move(e));
  }
}

// Scales every part of the injection's gradient the method receives (not the head's,
// which the trainer holds itself).
void scale_method_gradient(InjectionGrad& grad, float factor) {
  grad.virtual_tokens *= factor;
  grad.prefix *= factor;
  grad.adapter_prompts *= factor;
  grad.adapter_gates *= factor;
}

std::string eval_line(const EvalResult& r) {
  char buf[200];
  if (r.classification) {
    std::snprintf(buf, sizeof buf, "loss %.4f, accuracy %.1f%%, macro-F1 %.3f", r.loss,
                  100 * r.accuracy, r.macro_f1);
    return buf;
  }
  int n = std::snprintf(buf, sizeof buf, "loss %.4f, perplexity %.2f", r.loss, r.perplexity);
  if (r.has_outputs)
    n += std::snprintf(buf + n, sizeof buf - n, ", exact match %.1f%%", 100 * r.exact_match);
  if (r.rank_candidates >= 2)
    n += std::snprintf(buf + n, sizeof buf - n, ", rank accuracy %.1f%%", 100 * r.rank_accuracy);
  if (r.has_distill)
    std::snprintf(buf + n, sizeof buf - n, ", distillation loss %.4f", r.distill_loss);
  return buf;
}

// Lines about the run folder (a crash recovered from, an older state file) that a user
// must see even with --quiet.
void note(const std::string& line) {
  std::fprintf(stderr, "%s\n", line.c_str());
}

// Where a run starts: its settings and loop state, and the files it reads.
struct RunStart {
  TrainConfig cfg;
  LoopState loop;
  std::vector<std::string> task_names;
  nlohmann::json saved_options;  // a resumed run's plugin options
  RunInputs inputs;
  int saved_total_steps = 0;
  std::string state_file;  // a resumed run's trainer_state.json
};

RunStart start_new_run(const TrainConfig& given) {
  if (given.data.empty()) throw Error("no training data (--data FILE)");
  if (given.output_dir.empty()) throw Error("no output folder (--output DIR)");
  check_train_options(given);
  Ranks& ranks = Ranks::world();
  if (ranks.root()) prepare_output_folder(given.output_dir, given.overwrite);
  ranks.barrier();
  RunStart r;
  r.cfg = given;
  r.inputs = RunInputs::of_new_run(given);
  return r;
}

// The saved run's settings, continued in its own folder, after checking that the folder
// holds one whole checkpoint and that the data is the data the run started with.
RunStart start_resumed_run(const TrainConfig& given, const std::string& dir) {
  check_int("--threads", given.threads, 0, kMaxThreads);
  check_int("--stop-after", given.stop_after, 0);
  Ranks& ranks = Ranks::world();
  if (ranks.root())  // one rank repairs the folder; the others read it after
    for (const std::string& line : recover_run_folder(dir)) note(line);
  ranks.barrier();
  check_resume_folder(dir);
  RunStart r;
  r.state_file = (fs::path(dir) / kTrainerStateFile).string();
  const nlohmann::json st = read_json(r.state_file);
  const JsonPlace place{r.state_file, ""};
  r.cfg = TrainConfig::from_json(json_member(st, "config", place), r.state_file);
  try {
    check_train_options(r.cfg);
  } catch (const OptionError& e) {  // a damaged file, not a usage error
    throw Error(r.state_file + ": the saved setting " + e.what());
  }
  r.cfg.output_dir = dir;
  r.cfg.threads = given.threads;
  r.cfg.quiet = given.quiet;
  r.cfg.stop_after = given.stop_after;
  r.saved_total_steps = json_field<int>(st, "total_steps", place);
  r.loop = LoopState::from_json(json_member(st, "loop", place), r.saved_total_steps, r.state_file);
  r.task_names = json_field<std::vector<std::string>>(st, "task_names", place);
  r.saved_options = json_member(st, "options", place);
  if (!verify_checkpoint(dir, st, r.loop.step) && ranks.root())
    note("warning: " + r.state_file +
         " has no manifest (an older PromptHost's): its files cannot be checked to be of step " +
         std::to_string(r.loop.step));
  std::vector<std::string> warnings;
  r.inputs = RunInputs::of_resumed_run(st, r.cfg, given, r.state_file, warnings);
  if (ranks.root())
    for (const std::string& w : warnings) note("warning: " + w);
  return r;
}

// The plugin's options: a new run's resolved from --config and --set, a resumed run's
// saved ones checked again.
nlohmann::json method_options(const host::PluginLibrary& library, const RunStart& start) {
  if (start.state_file.empty())
    return host::resolve_options(library.descriptor(), start.cfg.method_config, start.cfg.set,
                                 kPeftBaseFields);
  try {
    return host::resolve_options(library.descriptor(), start.saved_options, {});
  } catch (const Error& e) {
    throw Error(start.state_file + ": \"options\": " + e.what());
  }
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
  RunStart start = resume_dir.empty() ? start_new_run(given) : start_resumed_run(given, resume_dir);
  TrainConfig& cfg = start.cfg;
  LoopState& loop = start.loop;
  std::vector<std::string>& task_names = start.task_names;
  if (loop.finished) {  // resuming would only evaluate and save again
    TrainSummary done;
    done.already_finished = true;
    done.output_dir = cfg.output_dir;
    done.plugin = cfg.plugin;
    done.steps = loop.step;
    done.total_steps = start.saved_total_steps;
    return done;
  }
  set_num_threads(cfg.threads);

  auto library = start.state_file.empty() ? host::find_plugin(cfg.plugin, cfg.plugin_paths)
                                          : resumed_plugin(cfg.plugin, given, start.state_file);
  cfg.plugin = library->name();  // what the run's file records: the method, never a path
  cfg.plugin_paths = given.plugin_paths;
  const nlohmann::json options = method_options(*library, start);
  Model model = load_model(start.inputs.model);
  model.config.task = resolve_task_type(model.config, cfg.task_type, cfg.model);
  cfg.task_type = task_type_name(model.config.task);  // what the run's file records
  start.inputs.check_model(model.config);
  Data train_data = read_data(start.inputs.data);
  Data eval_data;
  if (!start.inputs.eval_data.empty()) eval_data = read_data(start.inputs.eval_data);
  const bool ids_only = all_token_ids(train_data.examples) &&
                        (eval_data.examples.empty() || all_token_ids(eval_data.examples));
  const auto tokenizer = load_data_tokenizer(start.inputs.tokenizer, ids_only);
  host::ModelHost model_host(model, tokenizer.get());
  host::MethodInstance method(library, model_host, options, cfg.seed);
  const ph_injection_spec spec = method.injection();
  check_method_for_task(spec, model.config.task, library->name());

  // data
  const auto parts = method.template_text().empty()
                         ? default_template(spec.n_virtual)
                         : parse_template(method.template_text(), spec.n_virtual);
  const VirtualLayout layout = virtual_layout(spec, model.config.task);
  const int room = model.config.max_positions - layout.encoder - spec.n_prefix;
  if (room <= 1) throw Error("the method's virtual tokens fill the model's context");
  const TaskEncoding encoding =
      task_encoding(model, model.config.task, spec, parts, tokenizer.get(),
                    cfg.max_length > 0 ? std::min(cfg.max_length, room) : room);
  TaskMap tasks(task_names);
  const bool needs_tasks = spec.per_example != 0;
  encode_data(train_data, start.inputs.data, tokenizer.get(), encoding, tasks, true, needs_tasks);
  if (!eval_data.examples.empty())
    encode_data(eval_data, start.inputs.eval_data, tokenizer.get(), encoding, tasks, false,
                needs_tasks);
  task_names = tasks.names();

  // SEQ_CLS: the classification head, trained with the prompt (PEFT's modules_to_save)
  TrainedHead head;
  if (model.config.task == TaskType::kSeqCls) {
    head = TrainedHead::of_model(model);
    if (head.empty())
      throw Error(cfg.model +
                  ": the model has no classification head tensors (classifier.*, "
                  "score.*) to train");
  }

  // schedule
  const int n = (int)train_data.examples.size();
  const int micro_per_epoch = (int)make_batches(epoch_order(n, cfg.seed, 0), train_data.lengths,
                                                cfg.batch_size, cfg.max_batch_tokens)
                                  .size();
  const int accum = cfg.grad_accum;
  const long long steps_per_epoch = (micro_per_epoch + accum - 1) / accum;
  if (cfg.max_steps == 0 && steps_per_epoch * cfg.epochs > std::numeric_limits<int>::max())
    throw OptionError("--epochs " + std::to_string(cfg.epochs) + " makes " +
                      std::to_string(steps_per_epoch * cfg.epochs) + " steps, more than " +
                      std::to_string(std::numeric_limits<int>::max()));
  const int total_steps = cfg.max_steps > 0 ? cfg.max_steps : (int)steps_per_epoch * cfg.epochs;
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
  // The head after the method's parameters: one optimizer, one gradient norm to clip.
  for (size_t numel : head.numels()) numels.push_back(numel);
  for (const ParamRef& r : head.refs()) refs.push_back(r);
  AdamW optimizer(cfg.adamw, numels);
  if (!resume_dir.empty())
    read_training_state((fs::path(resume_dir) / kTrainingStateFile).string(), method, optimizer,
                        &head);

  TrainSummary summary;
  summary.output_dir = cfg.output_dir;
  summary.plugin = library->descriptor().name;
  summary.trainable_parameters = method.parameter_count_total() + head.parameter_count();
  summary.task_type = cfg.task_type;
  summary.per_task = spec.per_example != 0;
  summary.task_names = task_names;
  summary.total_steps = total_steps;
  summary.truncated_examples = train_data.truncated_examples;
  // A distributed run: rank 0 alone writes files and shows progress; every rank trains.
  Ranks& ranks = Ranks::world();
  Progress progress(total_steps, cfg.log_every, cfg.quiet || !ranks.root());
  // Distillation (Cartridges): the method's teacher replaces the labels' loss.
  std::optional<Distiller> distiller;
  if (const auto teacher = method.teacher()) {
    if (model.config.task != TaskType::kCausalLm)
      throw Error(std::string("plugin ") + library->name() +
                  ": distillation needs a CAUSAL_LM model, not " +
                  task_type_name(model.config.task));
    distiller.emplace(model, tokenizer.get(), *teacher);
  }
  if (train_data.truncated_examples)
    progress.message(std::to_string(train_data.truncated_examples) + " of " + std::to_string(n) +
                     " training examples were cut to " +
                     std::to_string(encoding.encode.max_length) + " tokens");

  // Ready to train: the run this one overwrites goes now, so that a kill from here on
  // leaves this run's checkpoint or none, never the old one to resume by mistake.
  if (start.state_file.empty() && cfg.overwrite && ranks.root()) remove_checkpoint(cfg.output_dir);

  EvalOptions eval_options;
  eval_options.encoding = encoding;
  eval_options.head = head.empty() ? nullptr : &head.values();
  eval_options.generate = cfg.eval_generate;
  auto run_eval = [&]() {
    EvalResult r = evaluate(model, tokenizer.get(), method, eval_data.examples, eval_data.encoded,
                            eval_options, &ranks);
    if (distiller) {
      r.has_distill = true;
      r.distill_loss = distillation_eval(model, method, *distiller, eval_data.examples,
                                         eval_data.encoded, start.inputs.eval_data);
    }
    return r;
  };
  if (!eval_data.examples.empty() && loop.before.is_null()) {
    const EvalResult before = run_eval();
    loop.before = eval_json(before);
    progress.message("before training: " + eval_line(before));
  }

  // One checkpoint: every file written, then committed as a unit (checkpoint.h).
  auto save = [&]() {
    if (!ranks.root()) return;
    CheckpointWriter checkpoint(cfg.output_dir);
    const fs::path dir = checkpoint.dir();
    write_adapter(dir.string(), method, model.config, cfg.model, task_names,
                  head.empty() ? nullptr : &head);
    for (const char* file : {kAdapterModelFile, kAdapterConfigFile, kAdapterInfoFile})
      checkpoint.add(file);
    write_training_state((dir / kTrainingStateFile).string(), method, optimizer,
                         head.empty() ? nullptr : &head);
    checkpoint.add(kTrainingStateFile);
    std::string lines;
    std::vector<CurvePoint> train_curve, eval_curve;
    for (const auto& m : loop.metrics) {
      lines += m.dump() + "\n";
      if (m.contains("loss"))
        train_curve.push_back({m["step"].get<double>(), m["loss"].get<double>()});
      if (m.contains("eval_loss"))
        eval_curve.push_back({m["step"].get<double>(), m["eval_loss"].get<double>()});
    }
    write_file_atomic((dir / kMetricsFile).string(), lines);
    checkpoint.add(kMetricsFile);
    write_file_atomic((dir / kLossCurveFile).string(), loss_curve_svg(train_curve, eval_curve));
    checkpoint.add(kLossCurveFile);
    checkpoint.commit({{"config", cfg.to_json()},
                       {"options", options},
                       {"task_names", task_names},
                       {"total_steps", total_steps},
                       {"loop", loop.to_json()},
                       {"inputs", start.inputs.record}},
                      loop.step);
  };

  // the loop
  PassOptions pass_options;
  pass_options.recompute = cfg.recompute;
  TrainingPass pass(model, pass_options);
  // Forward and backward of this rank's share of a micro-batch (all of it alone); returns
  // the micro-batch's mean loss over every rank's scored tokens (distillation: over the
  // sequences, loss_count()). The gradient a rank passes back is its share's, weighted by
  // its part of that count: summed over the ranks, it is the gradient of the whole
  // micro-batch's mean.
  auto micro_step = [&](const std::vector<int>& share, int micro) {
    std::vector<Sequence> seqs;
    std::vector<int64_t> task_ids;
    for (int i : share) {
      seqs.push_back(train_data.encoded[i].sequence);
      if (distiller)
        distiller->attach(0, i, train_data.examples[i], start.inputs.data, seqs.back());
      if (train_data.encoded[i].task >= 0) task_ids.push_back(train_data.encoded[i].task);
    }
    if (task_ids.size() != share.size()) task_ids.clear();
    double loss = 0.0;
    int counted = 0;  // what the loss is a mean over (loss_count)
    InjectionGrad grad;
    if (!share.empty()) {
      Injection inj = method.forward((int64_t)share.size(), task_ids, true, loop.step);
      if (!head.empty()) inj.head = head.values();
      if (model.config.task == TaskType::kCausalLm && method.scores_labels())
        method.score_labels(seqs, batch_token_kinds(seqs, encoding.encode.bos_id), task_ids,
                            loop.step);
      loss = pass.forward(seqs, inj);
      counted = pass.loss_count();
      pass.backward(grad);
    }
    if (ranks.distributed()) {
      double sums[2] = {loss * counted, (double)counted};
      ranks.sum(sums, 2);
      loss = sums[1] > 0 ? sums[0] / sums[1] : 0.0;
      if (share.empty()) return loss;
      const float weight = sums[1] > 0 ? (float)(counted / sums[1]) : 0.0f;
      scale_method_gradient(grad, weight);
      for (auto& named : grad.head) named.second *= weight;
    }
    if (!head.empty()) head.accumulate(grad.head, 1.0f / (float)micro);
    if (micro > 1) {  // the step's gradient is the mean over its micro-batches
      scale_method_gradient(grad, 1.0f / (float)micro);
    }
    method.backward((int64_t)share.size(), task_ids, grad, loop.step);
    return loss;
  };
  const auto t_loop = Clock::now();
  progress.restart(loop.step);
  long tokens_seen = 0;
  bool stop = false;
  while (loop.step < total_steps && !stop) {
    const auto batches = make_batches(epoch_order(n, cfg.seed, loop.epoch), train_data.lengths,
                                      cfg.batch_size, cfg.max_batch_tokens);
    while (loop.step < total_steps && loop.batch_index < (int)batches.size() && !stop) {
      method.zero_grad();
      head.zero_grad();
      const int micro = std::min(accum, (int)batches.size() - loop.batch_index);
      double loss_sum = 0.0;
      for (int a = 0; a < micro; ++a) {
        const auto& idx = batches[loop.batch_index++];
        for (int i : idx) tokens_seen += train_data.lengths[i];  // all ranks' tokens
        loss_sum +=
            micro_step(rank_share(idx, train_data.lengths, ranks.rank(), ranks.size()), micro);
      }
      sum_gradients(refs, ranks);  // no-op alone
      const double lr = schedule.at(loop.step);
      const double grad_norm = optimizer.update(refs, lr, loop.step + 1);
      method.after_step(loop.step);
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
      if (cfg.save_every > 0 && loop.step % cfg.save_every == 0) save();
      if (cfg.stop_after > 0 && loop.step == cfg.stop_after && loop.step < total_steps) {
        save();
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
    summary.before =
        eval_from_json(loop.before, cfg.output_dir + "/" + kTrainerStateFile, "loop.before");
    summary.after = run_eval();
    nlohmann::json m = eval_json(summary.after);
    m["step"] = loop.step;
    loop.metrics.push_back(m);
    progress.message("after training: " + eval_line(summary.after));
  }
  loop.finished = true;
  save();
  summary.seconds = std::chrono::duration<double>(Clock::now() - t_start).count();
  return summary;
}

}  // namespace ph::trainer
