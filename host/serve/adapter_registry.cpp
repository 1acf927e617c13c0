// The server's adapters: each opened once (its plugin instance kept, for the injection of
// tasks asked for later), its injection cache computed once per task and shared.
#include "host/serve/adapter_registry.h"

#include <map>
#include <mutex>
#include <utility>

#include <xtensor/xview.hpp>

#include "host/plugin/method_instance.h"
#include "host/serve/api_error.h"
#include "host/trainer/adapter_loading.h"
#include "host/trainer/generation_prompt.h"
#include "models/common/error.h"
#include "models/generate/generate.h"

namespace ph::serve {

namespace {

ApiError bad_request(const std::string& message, const std::string& param,
                     const std::string& code = "") {
  return ApiError(400, message, "invalid_request_error", param, code);
}

// What the requests of one adapter and task start from.
struct TaskInjection {
  std::shared_ptr<const InjectionCache> cache;
  std::shared_ptr<const xt::xtensor<float, 2>> rows;  // a template's slots; null if none
  std::string task;                                   // its name, "" for no task
};

struct Adapter {
  AdapterSummary summary;
  // Declared before `opened`: its instance refers to it, so it must go last.
  std::unique_ptr<host::ModelHost> model_host;
  trainer::LoadedAdapter opened;
  std::unique_ptr<trainer::GenerationEncoding> encoding;
  bool multitask = false;
  std::mutex mutex;                          // the plugin instance and `by_task`
  std::map<int64_t, TaskInjection> by_task;  // -1 for an adapter without tasks
};

// A multitask adapter's tasks: their names, or their indices when the files name none.
std::vector<std::string> task_list(const trainer::LoadedAdapter& a) {
  if (!a.info.task_names.empty()) return a.info.task_names;
  std::vector<std::string> out;
  const auto& options = a.method->options();
  const int n = options.contains("num_tasks") && options["num_tasks"].is_number_integer()
                    ? options["num_tasks"].get<int>()
                    : 1;
  for (int k = 0; k < n; ++k) out.push_back(std::to_string(k));
  return out;
}

void check_adapter_name(const std::string& name, const std::string& base_name) {
  if (name.empty()) throw bad_request("the adapter's name is empty", "name");
  if (name.find_first_of(":/") != std::string::npos)
    throw bad_request("the adapter name \"" + name +
                          "\" has a ':' or '/' (\"NAME:TASK\" names a multitask adapter's task)",
                      "name");
  if (name == base_name) throw bad_request("\"" + name + "\" is the base model's name", "name");
}

// The model field "NAME:TASK" split at its first ':', and the task field agreeing with it.
std::pair<std::string, std::string> model_and_task(const std::string& model,
                                                   const std::string& task) {
  const size_t colon = model.find(':');
  if (colon == std::string::npos) return {model, task};
  const std::string name = model.substr(0, colon), named = model.substr(colon + 1);
  if (!task.empty() && task != named)
    throw bad_request("the model \"" + model + "\" names the task \"" + named +
                          "\" but the field task is \"" + task + "\"",
                      "task");
  return {name, named};
}

// Token ids a client sent: real tokens of the vocabulary (a negative id would be read as
// a virtual slot).
void check_prompt_ids(const std::vector<int32_t>& ids, int vocab_size) {
  for (size_t i = 0; i < ids.size(); ++i)
    if (ids[i] < 0 || ids[i] >= vocab_size)
      throw bad_request("token id " + std::to_string(ids[i]) + " at prompt position " +
                            std::to_string(i) + " is outside the model's vocabulary [0, " +
                            std::to_string(vocab_size) + ")",
                        "prompt");
}

}  // namespace

struct AdapterRegistry::Impl {
  Impl(const Model& model, const Tokenizer* tokenizer, std::string base_name,
       std::vector<std::string> plugin_paths)
      : model(model),
        tokenizer(tokenizer),
        base_name(std::move(base_name)),
        plugin_paths(std::move(plugin_paths)) {}

  const Model& model;
  const Tokenizer* tokenizer;
  std::string base_name;
  std::vector<std::string> plugin_paths;
  std::shared_ptr<const InjectionCache> no_injection = std::make_shared<InjectionCache>();
  std::mutex load_mutex;  // one load at a time (plugin discovery and loading)
  mutable std::mutex mutex;
  std::vector<std::shared_ptr<Adapter>> adapters;  // in order of loading

  std::shared_ptr<Adapter> find(const std::string& name) const {
    std::lock_guard<std::mutex> lock(mutex);
    for (const auto& a : adapters)
      if (a->summary.name == name) return a;
    return nullptr;
  }

  std::unique_ptr<Adapter> open(const std::string& name, const std::string& path) const;
  TaskInjection injection_for(Adapter& a, const std::string& task) const;
  PreparedPrompt prepare_base(const std::string& task, const PromptInput& input) const;
};

std::unique_ptr<Adapter> AdapterRegistry::Impl::open(const std::string& name,
                                                     const std::string& path) const {
  auto a = std::make_unique<Adapter>();
  try {
    a->model_host = std::make_unique<host::ModelHost>(model, tokenizer);
    a->opened = trainer::open_adapter(path, *a->model_host, plugin_paths);
    a->encoding = std::make_unique<trainer::GenerationEncoding>(model, a->opened, tokenizer);
  } catch (const Error& e) {
    throw bad_request(e.what(), "path");
  }
  const ph_injection_spec spec = a->opened.method->injection();
  a->multitask = spec.per_example != 0;
  AdapterSummary& s = a->summary;
  s.name = name;
  s.path = path;
  s.method = a->opened.method->library().name();
  s.peft_type = a->opened.info.peft_config.value("peft_type", "");
  s.num_virtual_tokens = spec.n_virtual;
  if (a->multitask) s.task_names = task_list(a->opened);
  s.has_template = !a->opened.method->template_text().empty();
  // The first task's injection now: an adapter that cannot make one is refused at once.
  injection_for(*a, a->multitask ? s.task_names.at(0) : "");
  return a;
}

TaskInjection AdapterRegistry::Impl::injection_for(Adapter& a, const std::string& task) const {
  if (!a.multitask && !task.empty())
    throw bad_request(
        "the adapter \"" + a.summary.name + "\" has no tasks (given \"" + task + "\")", "task");
  std::vector<int64_t> ids;
  try {
    ids = trainer::request_tasks(a.opened, task, "the field task");
  } catch (const Error& e) {
    throw bad_request(e.what(), "task");
  }
  const int64_t key = ids.empty() ? -1 : ids[0];
  const auto& names = a.summary.task_names;
  if (key >= (int64_t)names.size())
    throw bad_request("the adapter \"" + a.summary.name + "\" has " + std::to_string(names.size()) +
                          " tasks, not a task " + task,
                      "task");
  std::lock_guard<std::mutex> lock(a.mutex);
  const auto found = a.by_task.find(key);
  if (found != a.by_task.end()) return found->second;
  TaskInjection t;
  if (key >= 0) t.task = names[key];
  try {
    const Injection injection = a.opened.method->forward(1, ids, false);
    t.cache = std::make_shared<InjectionCache>(model, a.encoding->cached(injection));
    xt::xtensor<float, 2> rows = a.encoding->prompt_rows(injection);
    if (rows.size() > 0) t.rows = std::make_shared<const xt::xtensor<float, 2>>(std::move(rows));
  } catch (const Error& e) {
    throw bad_request(a.summary.name + ": " + e.what(), a.multitask ? "task" : "model");
  }
  return a.by_task[key] = t;
}

PreparedPrompt AdapterRegistry::Impl::prepare_base(const std::string& task,
                                                   const PromptInput& input) const {
  if (!task.empty())
    throw bad_request("the base model \"" + base_name + "\" has no tasks (given \"" + task + "\")",
                      "task");
  PreparedPrompt out;
  out.injection = no_injection;
  try {
    out.tokens = trainer::base_generation_prompt(model.config, tokenizer, input);
  } catch (const Error& e) {
    throw bad_request(e.what(), "prompt");
  }
  out.text_ids = out.tokens;
  return out;
}

AdapterRegistry::AdapterRegistry(const Model& model, const Tokenizer* tokenizer,
                                 std::string base_name, std::vector<std::string> plugin_paths)
    : impl_(
          std::make_unique<Impl>(model, tokenizer, std::move(base_name), std::move(plugin_paths))) {
  if (model.config.task != TaskType::kCausalLm)
    throw Error("the server generates text with causal language models; this model is " +
                std::string(task_type_name(model.config.task)));
}

AdapterRegistry::~AdapterRegistry() = default;

const std::string& AdapterRegistry::base_name() const {
  return impl_->base_name;
}

AdapterSummary AdapterRegistry::load(const std::string& name, const std::string& path) {
  check_adapter_name(name, impl_->base_name);
  std::lock_guard<std::mutex> one_load(impl_->load_mutex);
  if (impl_->find(name)) throw bad_request("an adapter named \"" + name + "\" is loaded", "name");
  std::shared_ptr<Adapter> a = impl_->open(name, path);
  std::lock_guard<std::mutex> lock(impl_->mutex);
  impl_->adapters.push_back(a);
  return a->summary;
}

bool AdapterRegistry::unload(const std::string& name) {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  auto& all = impl_->adapters;
  for (auto it = all.begin(); it != all.end(); ++it)
    if ((*it)->summary.name == name) {
      all.erase(it);  // prepare() calls holding it keep it until they return
      return true;
    }
  return false;
}

std::vector<AdapterSummary> AdapterRegistry::list() const {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  std::vector<AdapterSummary> out;
  for (const auto& a : impl_->adapters) out.push_back(a->summary);
  return out;
}

PreparedPrompt AdapterRegistry::prepare(const std::string& model, const std::string& task,
                                        const PromptInput& input) const {
  const auto [name, task_name] = model_and_task(model, task);
  const ModelConfig& config = impl_->model.config;
  if (input.is_ids) check_prompt_ids(input.ids, config.vocab_size);
  if (!input.is_ids && !impl_->tokenizer)
    throw bad_request("the prompt is text but the model has no tokenizer: give token ids",
                      "prompt");
  PreparedPrompt out;
  if (name == impl_->base_name) {
    out = impl_->prepare_base(task_name, input);
  } else {
    const std::shared_ptr<Adapter> a = impl_->find(name);
    if (!a)
      throw ApiError(404, "The model `" + name + "` does not exist", "invalid_request_error",
                     "model", "model_not_found");
    const TaskInjection t = impl_->injection_for(*a, task_name);
    try {
      out.tokens = a->encoding->encode(input, impl_->tokenizer, "prompt");
    } catch (const Error& e) {
      throw bad_request(e.what(), "prompt");
    }
    out.injection = t.cache;
    out.virtual_rows = t.rows;
    for (int32_t token : out.tokens)
      if (!is_virtual(token)) out.text_ids.push_back(token);
    out.adapter = name;
    out.task = t.task;
  }
  const int positions = out.injection->length() + (int)out.tokens.size();
  if (positions > config.max_positions)
    throw bad_request("the prompt takes " + std::to_string(positions) +
                          " positions (with the adapter's), more than the model's context of " +
                          std::to_string(config.max_positions),
                      "prompt", "context_length_exceeded");
  if (out.tokens.empty() && out.injection->last_logits().size() == 0)
    throw bad_request("the prompt is empty and the model has no virtual tokens to continue from",
                      "prompt");
  return out;
}

}  // namespace ph::serve
