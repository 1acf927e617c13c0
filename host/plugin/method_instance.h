// The frozen model served to plugins (ph.host.model/1, ph.host.random/1), and one method
// instance seen from the host: C++ calls over the ABI table, statuses turned into
// ph::Error, tensors allocated by the host from the instance's injection spec.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "host/plugin/plugin_library.h"
#include "models/engine/engine.h"
#include "models/tokenizer/tokenizer.h"
#include "prompthost_sdk/plugin_abi.h"

namespace ph::host {

// A ph_host whose services serve one frozen model (and its tokenizer, may be null: then
// tokenize and prefix_from_text answer PH_ERR_UNSUPPORTED). The model and tokenizer must
// outlive it, and it must outlive every instance created with it.
//
// Its ph_model_info tells plugins the task type `task` (default: the model's own,
// model.config.task; the trainer passes --task-type's), with PEFT's
// num_transformer_submodules for it, the encoder and decoder layer counts and the
// number of classes. Any task type is accepted: whether it suits the model is the
// caller's to check.
class ModelHost {
 public:
  ModelHost(const Model& model, const Tokenizer* tokenizer,
            std::optional<TaskType> task = std::nullopt);
  ~ModelHost();
  ModelHost(const ModelHost&) = delete;
  ModelHost& operator=(const ModelHost&) = delete;
  const ph_host* table() const;
  const ph_model_info& info() const;
  const Model& model() const;
  TaskType task() const;

  struct Impl;  // public so that the service callbacks (model_host.cpp) can reach it

 private:
  std::unique_ptr<Impl> impl_;
};

// Which virtual-token slots of an instance's injection go where (ph_injection_spec's
// n_input_virtual / n_decoder_virtual, 1.0 specs normalised): slots [0, input) in the
// input (the encoder's for SEQ_2_SEQ_LM, placed by the template when there is one),
// [input, input + decoder) before the decoder's input (unscored), the rest not fed.
struct VirtualLayout {
  int input = 0;
  int decoder = 0;
};

struct ParameterView {
  std::string name;
  std::vector<int64_t> shape;
  float* value = nullptr;  // compact row-major, numel elements (checked at creation)
  float* grad = nullptr;
  size_t numel = 0;
};

class MethodInstance {
 public:
  // Creates an instance with resolved options (see method_options.h) and a seed, and
  // checks what it reports. A task type (model_host.task()) the plugin's descriptor does
  // not list is refused before the plugin is called (check_task_type_supported); then it
  // checks what the instance reports: its table, its injection spec, every parameter's tensors
  // (float32 on the CPU, compact row-major, grad shaped as value). Throws ph::Error
  // naming the plugin and the problem; a created-but-rejected instance is destroyed.
  // for_import: the instance is made to receive import_adapter (PH_CREATE_FOR_IMPORT).
  MethodInstance(std::shared_ptr<PluginLibrary> library, const ModelHost& model_host,
                 const nlohmann::json& options, uint64_t seed, bool for_import = false);
  ~MethodInstance();
  MethodInstance(const MethodInstance&) = delete;
  MethodInstance& operator=(const MethodInstance&) = delete;

  const PluginLibrary& library() const { return *library_; }
  const nlohmann::json& options() const { return options_; }
  // The spec read at creation; its template_text points into template_text() (or is NULL).
  ph_injection_spec injection() const { return spec_; }
  const std::string& template_text() const { return template_; }
  VirtualLayout virtual_layout() const { return layout_; }
  const std::vector<ParameterView>& parameters() const { return parameters_; }
  size_t parameter_count_total() const;  // sum of numel

  // The injection for a batch of `batch_size` examples (task ids empty or one per
  // example) at optimizer step `step` (ph_batch.step: keys the method's dropout streams).
  // Throws ph::Error if the plugin fails or leaves a non-finite value.
  Injection forward(int64_t batch_size, const std::vector<int64_t>& task_ids, bool train,
                    int64_t step = 0);
  // Accumulates parameter gradients from the injection's gradient (shapes as forward's).
  void backward(int64_t batch_size, const std::vector<int64_t>& task_ids, const InjectionGrad& grad,
                int64_t step = 0);
  void zero_grad();

  // Since 1.2 (no-ops for an instance without them). Whether the instance rewrites the
  // labels of its batches.
  bool scores_labels() const;
  // Lets the method rewrite the labels and loss weights of a CAUSAL_LM batch (after its
  // forward, before the loss): builds one ph_scored_sequence per sequence (slots from the
  // virtual tokens, `kinds` PH_TOKEN_* per token, one vector per sequence), and writes
  // back Sequence::labels and label_weights, checked: labels in the vocabulary or -100,
  // weights finite and >= 0. Throws ph::Error naming the plugin, sequence and position.
  void score_labels(std::vector<Sequence>& batch, const std::vector<std::vector<int64_t>>& kinds,
                    const std::vector<int64_t>& task_ids, int64_t step);
  // After the optimizer's update of step `step` (0-based): the method may rewrite its
  // parameters (CPT's projection). Throws if the plugin fails or leaves a non-finite value.
  void after_step(int64_t step);

  // PEFT-layout export: named tensors (compact float32) and adapter_config fields.
  struct Adapter {
    std::map<std::string, std::pair<std::vector<int64_t>, std::vector<float>>> tensors;
    nlohmann::json config = nlohmann::json::object();
  };
  Adapter export_adapter() const;
  void import_adapter(const Adapter& adapter);

  // The plugin's own table, for the conformance runner (host/validate), which calls the
  // ABI 1.2 entries directly to check what a plugin returns from them.
  ph_method* table() const { return method_; }
  // The distillation teacher the instance is trained against (ph_method.teacher, ABI
  // 1.2), copied and checked (top_k >= 1, a finite temperature >= 0, context ids in the
  // vocabulary); nullopt for training on the labels (and for a 1.0/1.1 instance).
  struct Teacher {
    int top_k = 1;
    float temperature = 1.0f;
    std::vector<int32_t> context_ids;
    bool labeled_only = false;  // ph_teacher_spec.labeled_only
  };
  std::optional<Teacher> teacher() const;

 private:
  std::string context(const char* call) const;  // "plugin NAME: call"
  // Runs fn(), a call into the plugin, marked as `call` (plugin_call.h: crash reports
  // and --plugin-timeout name it).
  template <class Fn>
  auto in_plugin(const char* call, Fn&& fn) const;
  void check_table();
  void read_injection_spec();
  void read_virtual_layout(const ph_injection_spec& spec, const std::string& where);
  void read_adapter_spec(const ph_injection_spec& spec, const std::string& where);
  // Since 1.2: the table's forward_injection/backward_injection, used instead of
  // forward/backward when present.
  bool has_injection_calls() const;
  void read_parameters();

  std::shared_ptr<PluginLibrary> library_;  // first member: unloaded last
  const ModelHost& model_host_;
  nlohmann::json options_;
  ph_method* method_ = nullptr;
  ph_injection_spec spec_{};
  VirtualLayout layout_;
  std::string template_;
  std::vector<ParameterView> parameters_;
};

}  // namespace ph::host
