// The adapter folder: Hugging Face PEFT's files (adapter_config.json,
// adapter_model.safetensors) plus PromptHost's own (prompthost_adapter.json: the plugin,
// its options, the task names and the model the adapter was made for), and the training
// state that --resume needs (training_state.safetensors, trainer_state.json).
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "host/plugin/method_instance.h"
#include "host/trainer/optimizer.h"
#include "host/trainer/trained_head.h"

namespace ph::trainer {

// PEFT's adapter_config.json fields that are not method options (peft-spec §3): a
// --config file may carry them; they are the host's to write.
extern const std::vector<std::string> kPeftBaseFields;

constexpr const char* kAdapterConfigFile = "adapter_config.json";
constexpr const char* kAdapterModelFile = "adapter_model.safetensors";
constexpr const char* kAdapterInfoFile = "prompthost_adapter.json";
constexpr const char* kTrainingStateFile = "training_state.safetensors";
constexpr const char* kTrainerStateFile = "trainer_state.json";

// The PEFT release whose adapter_config.json layout PromptHost writes: its keys, and its
// own version as "peft_version" (a key PEFT writes since 0.18). Older PEFT releases load
// the files too, ignoring the keys they do not know.
constexpr const char* kPeftLayoutVersion = "0.20.0";

// The model facts an adapter must match: {"arch", "dim", "n_layers", ...}.
nlohmann::json model_fingerprint(const ModelConfig& config);
// Throws ph::Error naming the adapter folder and the first fact that differs.
void check_fingerprint(const nlohmann::json& fingerprint, const ModelConfig& config,
                       const std::string& adapter_dir);

// Writes adapter_config.json (PEFT's common fields, then the method's; a null
// "tokenizer_name_or_path" becomes `base_model`), the exported tensors (metadata
// {"format": "pt"}) and prompthost_adapter.json (the options as given), each atomically.
// config.task is the task type written (task_type, num_transformer_submodules); a SEQ_CLS
// adapter also holds the trained `head` under PEFT's names, modules_to_save, and the
// classes (prompthost_adapter.json "labels").
void write_adapter(const std::string& dir, const host::MethodInstance& method,
                   const ModelConfig& config, const std::string& base_model,
                   const std::vector<std::string>& task_names, const TrainedHead* head = nullptr);

struct AdapterInfo {
  std::string dir;
  nlohmann::json peft_config;  // adapter_config.json
  nlohmann::json info;         // prompthost_adapter.json, or null for a PEFT-made adapter
  std::string plugin;          // plugin name, or "" (find it by peft_type)
  nlohmann::json options;      // the method's options
  std::vector<std::string> task_names;
  std::string task_type;            // adapter_config.json's task_type ("" when absent or null)
  std::vector<std::string> labels;  // prompthost_adapter.json's classes (SEQ_CLS; may be empty)
};
// Reads an adapter folder (PromptHost's, or PEFT's: then the options come from
// adapter_config.json). Throws ph::Error naming the file and the problem.
AdapterInfo read_adapter_info(const std::string& dir);
// Loads the exported tensors into a method instance (import_adapter), and the saved
// classification head (if any) into `head`.
void load_adapter_tensors(const std::string& dir, host::MethodInstance& method,
                          TrainedHead* head = nullptr);
// Throws ph::Error naming the adapter's file and field when it was made for another task
// type than `config.task`, or (SEQ_CLS) for other classes than config.labels.
void check_adapter_task(const AdapterInfo& info, const ModelConfig& config);

// Every parameter value and both AdamW moments, by parameter name; the optimizer holds
// the method's parameters first, then the head's tensors (head_param.<path>, ...).
void write_training_state(const std::string& path, const host::MethodInstance& method,
                          AdamW& optimizer, const TrainedHead* head = nullptr);
void read_training_state(const std::string& path, host::MethodInstance& method, AdamW& optimizer,
                         TrainedHead* head = nullptr);

}  // namespace ph::trainer
