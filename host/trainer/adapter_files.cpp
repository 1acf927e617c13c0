#include "host/trainer/adapter_files.h"

#include <filesystem>

#include "host/trainer/json_fields.h"
#include "host/trainer/run_files.h"
#include "host/trainer/task_type.h"
#include "models/common/error.h"
#include "models/loader/safetensors.h"

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

std::string join(const std::string& dir, const char* file) {
  return (fs::path(dir) / file).string();
}

}  // namespace

nlohmann::json model_fingerprint(const ModelConfig& c) {
  return {{"arch", arch_name(c.arch)},  {"dim", c.dim},
          {"n_layers", c.n_layers},     {"n_heads", c.n_heads},
          {"n_kv_heads", c.n_kv_heads}, {"head_dim", c.head_dim},
          {"vocab_size", c.vocab_size}};
}

void check_fingerprint(const nlohmann::json& fp, const ModelConfig& config,
                       const std::string& adapter_dir) {
  const nlohmann::json mine = model_fingerprint(config);
  for (auto it = mine.begin(); it != mine.end(); ++it) {
    if (!fp.contains(it.key())) continue;
    if (fp[it.key()] != it.value())
      throw Error(adapter_dir + ": the adapter was made for a model with " + it.key() + " = " +
                  fp[it.key()].dump() + ", this model has " + it.value().dump());
  }
}

void write_adapter(const std::string& dir, const host::MethodInstance& method,
                   const ModelConfig& config, const std::string& base_model,
                   const std::vector<std::string>& task_names, const TrainedHead* head) {
  fs::create_directories(dir);
  const auto adapter = method.export_adapter();
  const ph_injection_spec spec = method.injection();
  const int submodules = transformer_submodules(config.task);
  const bool classifier = config.task == TaskType::kSeqCls;
  // PEFT's fields common to prompt learning (peft-spec §3); the method adds its own and
  // may override the geometry (prefix tuning's key/value width).
  nlohmann::json cfg = {
      {"auto_mapping", nullptr},
      {"base_model_name_or_path", base_model},
      {"inference_mode", true},
      {"modules_to_save", classifier ? nlohmann::json(kHeadModules) : nullptr},
      {"num_attention_heads", config.n_heads},
      {"num_layers", config.n_layers},
      {"num_transformer_submodules", submodules},
      {"num_virtual_tokens", std::max(spec.n_virtual / submodules, spec.n_prefix)},
      {"peft_type", method.library().descriptor().peft_type},
      {"peft_version", kPeftLayoutVersion},
      {"revision", nullptr},
      {"task_type", task_type_name(config.task)},
      {"token_dim", config.dim}};
  cfg.update(adapter.config);
  // LLaMA-Adapter is not prompt learning: PEFT's AdaptionPromptConfig has none of its
  // geometry (10 keys, tests/fixtures/family/README.md §4).
  if (spec.adapter_layers > 0)
    for (const char* key : {"modules_to_save", "num_attention_heads", "num_layers",
                            "num_transformer_submodules", "num_virtual_tokens", "token_dim"})
      cfg.erase(key);
  // PEFT refuses a TEXT-initialised prompt without a tokenizer, even to load it for
  // inference; the text was tokenized with the base model's, so that is the one to name.
  auto tokenizer = cfg.find("tokenizer_name_or_path");
  if (tokenizer != cfg.end() && tokenizer->is_null()) *tokenizer = base_model;
  std::vector<TensorToWrite> tensors;
  for (const auto& [name, t] : adapter.tensors)
    tensors.push_back(f32_tensor(name, t.first, t.second.data()));
  if (head)
    for (const TensorToWrite& t : head->adapter_tensors()) tensors.push_back(t);
  write_safetensors(join(dir, kAdapterModelFile), tensors, {{"format", "pt"}});
  write_json_atomic(join(dir, kAdapterConfigFile), cfg);
  nlohmann::json info = {{"plugin", method.library().descriptor().name},
                         {"plugin_version", method.library().descriptor().version},
                         {"options", method.options()},
                         {"model", model_fingerprint(config)},
                         {"task_names", task_names},
                         {"task_type", task_type_name(config.task)}};
  if (classifier) info["labels"] = config.labels;
  write_json_atomic(join(dir, kAdapterInfoFile), info);
}

AdapterInfo read_adapter_info(const std::string& dir) {
  if (!fs::is_directory(dir)) throw Error(dir + ": not an adapter folder (no such directory)");
  AdapterInfo a;
  a.dir = dir;
  const std::string cfg_path = join(dir, kAdapterConfigFile);
  if (!fs::exists(cfg_path)) throw Error(dir + ": not an adapter folder (no adapter_config.json)");
  a.peft_config = read_json(cfg_path);
  if (!a.peft_config.is_object() || !a.peft_config.contains("peft_type") ||
      !a.peft_config["peft_type"].is_string())
    throw Error(cfg_path + ": needs a \"peft_type\" string");
  const std::string info_path = join(dir, kAdapterInfoFile);
  if (fs::exists(info_path)) {
    a.info = read_json(info_path);
    const JsonPlace place{info_path, ""};
    if (!a.info.is_object())
      place.fail("must be a JSON object, got " + json_detail::type_of(a.info));
    a.plugin = json_field_or<std::string>(a.info, "plugin", "", place);
    a.options = json_field_or(a.info, "options", nlohmann::json::object(), place);
    if (!a.options.is_object()) (place / "options").fail("must be an object");
    a.task_names = json_field_or<std::vector<std::string>>(a.info, "task_names", {}, place);
    if (a.info.contains("model") && !a.info["model"].is_object())
      (place / "model").fail("must be an object");
    a.labels = json_field_or<std::vector<std::string>>(a.info, "labels", {}, place);
  } else {
    a.options = a.peft_config;  // a PEFT-made adapter: its config holds the options
  }
  const JsonPlace cfg_place{cfg_path, ""};
  if (a.peft_config.contains("task_type") && !a.peft_config["task_type"].is_null())
    a.task_type = json_field<std::string>(a.peft_config, "task_type", cfg_place);
  // PEFT lists modules_to_save twice for SEQ_CLS (["classifier", "score", "classifier",
  // "score"]): any list of names is accepted, repetitions included.
  if (a.peft_config.contains("modules_to_save") && !a.peft_config["modules_to_save"].is_null())
    json_field<std::vector<std::string>>(a.peft_config, "modules_to_save", cfg_place);
  return a;
}

void check_adapter_task(const AdapterInfo& a, const ModelConfig& config) {
  const std::string used = task_type_name(config.task);
  if (!a.task_type.empty() && a.task_type != used)
    throw Error(join(a.dir, kAdapterConfigFile) + ": field \"task_type\" is " + a.task_type +
                ", but the model is used as " + used +
                ": an adapter trained for one task type cannot be applied to another");
  if (config.task == TaskType::kSeqCls && !a.labels.empty() && a.labels != config.labels)
    throw Error(join(a.dir, kAdapterInfoFile) + ": field \"labels\" is " +
                nlohmann::json(a.labels).dump() + ", the model's classes (id2label) are " +
                nlohmann::json(config.labels).dump());
}

void load_adapter_tensors(const std::string& dir, host::MethodInstance& method, TrainedHead* head) {
  SafetensorsFile file(join(dir, kAdapterModelFile));
  host::MethodInstance::Adapter adapter;
  adapter.config = read_json(join(dir, kAdapterConfigFile));
  if (head) head->load_adapter(file);
  for (const TensorInfo& t : file.tensors()) {
    if (is_head_tensor(t.name)) continue;  // the host's (modules_to_save), not the method's
    const FloatTensor f = file.to_float(t);
    adapter.tensors[t.name] = {t.shape, std::vector<float>(f.data, f.data + f.numel)};
  }
  method.import_adapter(adapter);
}

void write_training_state(const std::string& path, const host::MethodInstance& method,
                          AdamW& optimizer, const TrainedHead* head) {
  const auto params = method.parameters();
  std::vector<TensorToWrite> tensors;
  for (size_t k = 0; k < params.size(); ++k) {
    const auto& p = params[k];
    tensors.push_back(f32_tensor("param." + p.name, p.shape, p.value));
    tensors.push_back(f32_tensor("adam_m." + p.name, p.shape, optimizer.first_moments()[k].data()));
    tensors.push_back(
        f32_tensor("adam_v." + p.name, p.shape, optimizer.second_moments()[k].data()));
  }
  if (head) {
    const auto head_tensors = head->adapter_tensors();
    for (size_t i = 0; i < head_tensors.size(); ++i) {
      const size_t k = params.size() + i;
      const TensorToWrite& t = head_tensors[i];
      const std::string& name = head->names()[i];
      tensors.push_back(f32_tensor("head_param." + name, t.shape, (const float*)t.data));
      tensors.push_back(
          f32_tensor("head_adam_m." + name, t.shape, optimizer.first_moments()[k].data()));
      tensors.push_back(
          f32_tensor("head_adam_v." + name, t.shape, optimizer.second_moments()[k].data()));
    }
  }
  write_safetensors(path, tensors, {{"format", "prompthost-training-state"}});
}

void read_training_state(const std::string& path, host::MethodInstance& method, AdamW& optimizer,
                         TrainedHead* head) {
  SafetensorsFile file(path);
  const auto params = method.parameters();
  auto load = [&](const std::string& name, float* dst, size_t numel) {
    const TensorInfo& t = file.info(name);
    if (t.numel != numel)
      throw Error(path + ": tensor " + name + " has " + std::to_string(t.numel) +
                  " elements, the method's parameter has " + std::to_string(numel));
    const FloatTensor f = file.to_float(t);
    std::copy_n(f.data, numel, dst);
  };
  for (size_t k = 0; k < params.size(); ++k) {
    const auto& p = params[k];
    load("param." + p.name, p.value, p.numel);
    load("adam_m." + p.name, optimizer.first_moments()[k].data(), p.numel);
    load("adam_v." + p.name, optimizer.second_moments()[k].data(), p.numel);
  }
  if (!head) return;
  const auto refs = head->refs();
  for (size_t i = 0; i < refs.size(); ++i) {
    const size_t k = params.size() + i;
    const std::string& name = head->names()[i];
    load("head_param." + name, refs[i].value, refs[i].numel);
    load("head_adam_m." + name, optimizer.first_moments()[k].data(), refs[i].numel);
    load("head_adam_v." + name, optimizer.second_moments()[k].data(), refs[i].numel);
  }
}

}  // namespace ph::trainer
