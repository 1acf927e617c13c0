// ABI 1.1 (task types) from both sides: a plugin built against the frozen 1.0 SDK
// (tests/plugins/abi_v1_0) still loads, trains and exports in this host; the model host
// tells plugins the task type and its PEFT facts; the bundled plugins lay out PEFT's
// tables per task type; a task type a plugin does not declare is refused with a reason,
// by the host and by the SDK.
#include <catch.hpp>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "host/plugin/method_instance.h"
#include "host/plugin/method_options.h"
#include "host/plugin/plugin_discovery.h"
#include "host/plugin/plugin_library.h"
#include "host/plugin/status.h"
#include "host/plugin/task_types.h"
#include "models/loader/random_model.h"
#include "plugin_test_support.h"
#include "prompthost_sdk/sdk/model.hpp"
#include "test_support.h"

using namespace ph::host;
using json = nlohmann::json;
using ph::TaskType;
using ph::test::contains;
using ph::test::test_plugin;

namespace {

std::unique_ptr<MethodInstance> make(const std::shared_ptr<PluginLibrary>& library,
                                     const ModelHost& host, const json& config = json::object()) {
  return std::make_unique<MethodInstance>(library, host,
                                          resolve_options(library->descriptor(), config, {}), 1);
}

// Loss of the instance's injection on one causal sequence: its input slots, then text.
double loss_of(MethodInstance& instance, const ph::Model& model, bool backward) {
  ph::Sequence s;
  for (int k = 0; k < instance.virtual_layout().input; ++k) {
    s.tokens.push_back(ph::virtual_slot(k));
    s.labels.push_back(ph::kIgnoreLabel);
  }
  for (int32_t id : {3, 7, 5, 9, 4}) {
    s.tokens.push_back(id);
    s.labels.push_back(id);
  }
  s.labels[instance.virtual_layout().input] = ph::kIgnoreLabel;
  ph::TrainingPass pass(model);
  const ph::Injection injection = instance.forward(1, {}, true);
  const double loss = pass.forward({s}, injection);
  if (backward) {
    ph::InjectionGrad grad;
    pass.backward(grad);
    instance.zero_grad();
    instance.backward(1, {}, grad);
  }
  return loss;
}

// Its instance (4 virtual tokens) lowers the loss with one gradient step, and exports
// its parameter as PEFT's prompt_embeddings.
void trains_a_step_and_exports(const std::shared_ptr<PluginLibrary>& library,
                               const ph::Model& model) {
  const ModelHost host(model, nullptr);
  auto instance = make(library, host, {{"num_virtual_tokens", 4}});
  REQUIRE(instance->injection().n_virtual == 4);
  CHECK(instance->virtual_layout().input == 4);  // causal: every row in the input
  CHECK(instance->virtual_layout().decoder == 0);

  // One step of gradient descent on its parameter lowers the loss.
  const double before = loss_of(*instance, model, true);
  const ParameterView& p = instance->parameters().at(0);
  for (size_t i = 0; i < p.numel; ++i) p.value[i] -= 0.5f * p.grad[i];
  const double after = loss_of(*instance, model, false);
  INFO("loss " << before << " -> " << after);
  CHECK(after < before);

  const auto adapter = instance->export_adapter();
  REQUIRE(adapter.tensors.count("prompt_embeddings"));
  const auto& [shape, values] = adapter.tensors.at("prompt_embeddings");
  CHECK(shape == std::vector<int64_t>{4, model.config.dim});
  CHECK(std::memcmp(values.data(), p.value, p.numel * sizeof(float)) == 0);
  CHECK(adapter.config.at("num_virtual_tokens") == 4);
}

}  // namespace

TEST_CASE("a plugin built against the 1.0 SDK loads, trains a step and exports in this host",
          "[abi]") {
  const auto library = PluginLibrary::load(test_plugin("abi_v1_0_prompt_tuning"));
  // What it was built with: ABI 1.0 and 1.0's descriptor (no task types).
  CHECK(library->entry().abi_minor == 0);
  CHECK(library->descriptor().struct_size == offsetof(ph_method_descriptor, n_options) + 8);
  CHECK_FALSE(PH_HAS(&library->descriptor(), ph_method_descriptor, n_task_types));
  CHECK(declared_task_types(library->descriptor()).empty());

  const ph::Model model = ph::make_random_model(ph::test::tiny_llama_config(), 5);
  trains_a_step_and_exports(library, model);

  // Undeclared task types: offered every one (it sees 1.0's fields only).
  const ModelHost seq2seq(model, nullptr, TaskType::kSeq2SeqLm);
  CHECK(make(library, seq2seq)->injection().n_virtual == 20);
}

TEST_CASE("a plugin built against the 1.1 SDK loads, trains a step and exports in this host",
          "[abi]") {
  const auto library = PluginLibrary::load(test_plugin("abi_v1_1_prompt_tuning"));
  // What it was built with: ABI 1.1's entry, descriptor (task types) and method table.
  CHECK(library->entry().abi_minor == 1);
  CHECK(library->descriptor().struct_size == sizeof(ph_method_descriptor));
  CHECK(declared_task_types(library->descriptor()).size() == 3);
  const ph::Model model = ph::make_random_model(ph::test::tiny_llama_config(), 5);
  const ModelHost host(model, nullptr);
  auto instance = make(library, host, {{"num_virtual_tokens", 4}});
  const ph_method* table = instance->table();
  CHECK(table->struct_size == offsetof(ph_method, get_extension) + sizeof(void*));
  CHECK_FALSE(PH_HAS(table, ph_method, forward_injection));
  CHECK_FALSE(PH_HAS(table, ph_method, teacher));
  trains_a_step_and_exports(library, model);

  // 1.1's layout for SEQ_2_SEQ_LM: 2n rows, the first n in the encoder's input.
  const ModelHost seq2seq(model, nullptr, TaskType::kSeq2SeqLm);
  const auto t5_like = make(library, seq2seq, {{"num_virtual_tokens", 4}});
  CHECK(t5_like->injection().n_virtual == 8);
  CHECK(t5_like->virtual_layout().input == 4);
}

TEST_CASE("the model host tells plugins the task type and PEFT's facts for it", "[abi]") {
  ph::ModelConfig c = ph::test::tiny_llama_config();
  const ph::Model decoder = ph::make_random_model(c, 5);
  const ModelHost causal_host(decoder, nullptr);
  const ph_model_info& info = causal_host.info();
  CHECK(info.struct_size == sizeof(ph_model_info));
  CHECK(info.task_type == PH_TASK_CAUSAL_LM);
  CHECK(info.num_transformer_submodules == 1);
  CHECK(info.n_encoder_layers == 0);
  CHECK(info.n_decoder_layers == c.n_layers);
  CHECK(info.num_labels == 0);

  ph::Model encoder_decoder = ph::make_random_model(c, 5);
  encoder_decoder.config.stacks = ph::Stacks::kEncoderDecoder;
  encoder_decoder.config.task = TaskType::kSeq2SeqLm;
  encoder_decoder.config.n_decoder_layers = 3;
  const ModelHost t5(encoder_decoder, nullptr);
  CHECK(t5.task() == TaskType::kSeq2SeqLm);  // the model's own task type by default
  CHECK(t5.info().task_type == PH_TASK_SEQ_2_SEQ_LM);
  CHECK(t5.info().num_transformer_submodules == 2);
  CHECK(t5.info().n_encoder_layers == c.n_layers);
  CHECK(t5.info().n_decoder_layers == 3);
  CHECK(t5.info().n_layers == c.n_layers);  // PEFT's num_layers: the encoder's

  ph::Model classifier = ph::make_random_model(c, 5);
  classifier.config.stacks = ph::Stacks::kEncoder;
  classifier.config.labels = {"a", "b", "c"};
  const ModelHost cls(classifier, nullptr, TaskType::kSeqCls);  // the trainer's --task-type
  CHECK(cls.info().task_type == PH_TASK_SEQ_CLS);
  CHECK(cls.info().num_transformer_submodules == 1);
  CHECK(cls.info().num_labels == 3);
  CHECK(cls.info().n_encoder_layers == c.n_layers);
  CHECK(cls.info().n_decoder_layers == 0);
}

TEST_CASE("the SDK completes a 1.0 host's model info with 1.0's meaning", "[abi]") {
  ph_model_info old;
  std::memset(&old, 0x5a, sizeof old);  // garbage past the 1.0 fields
  old.struct_size = offsetof(ph_model_info, eos_id) + sizeof(int32_t);
  old.n_layers = 6;
  const ph_model_info m = ph::sdk::complete_model_info(old);
  CHECK(m.struct_size == sizeof(ph_model_info));
  CHECK(m.n_layers == 6);
  CHECK(m.task_type == PH_TASK_CAUSAL_LM);
  CHECK(m.num_transformer_submodules == 1);
  CHECK(m.n_encoder_layers == 0);
  CHECK(m.n_decoder_layers == 6);
  CHECK(m.num_labels == 0);
  // 1.0's table was 56 bytes with tail padding: PH_HAS must not see a 1.1 field there.
  old.struct_size = 56;
  CHECK_FALSE(PH_HAS(&old, ph_model_info, task_type));
}

TEST_CASE("the bundled plugins lay out PEFT's tables for SEQ_2_SEQ_LM", "[abi]") {
  ph::ModelConfig c = ph::test::tiny_llama_config();
  ph::Model model = ph::make_random_model(c, 5);
  model.config.stacks = ph::Stacks::kEncoderDecoder;
  model.config.n_decoder_layers = c.n_layers;
  const ModelHost seq2seq(model, nullptr, TaskType::kSeq2SeqLm);
  const ModelHost causal(model, nullptr, TaskType::kCausalLm);
  const json n3 = {{"num_virtual_tokens", 3}};

  for (const char* method : {"prompt_tuning", "p_tuning"}) {
    INFO(method);
    const auto library = find_plugin(method, {});
    auto instance = make(library, seq2seq, n3);
    CHECK(instance->injection().n_virtual == 6);  // 2n rows (PEFT's table)
    CHECK(instance->virtual_layout().input == 3);
    CHECK(instance->virtual_layout().decoder == 0);  // rows n..2n-1 are kept, not fed
    const auto adapter = instance->export_adapter();
    CHECK(adapter.tensors.at("prompt_embeddings").first == std::vector<int64_t>{6, c.dim});
    CHECK(adapter.config.at("task_type") == "SEQ_2_SEQ_LM");
    CHECK(adapter.config.at("num_transformer_submodules") == 2);
    CHECK(adapter.config.at("num_virtual_tokens") == 3);
    CHECK(adapter.config.at("token_dim") == c.dim);
    CHECK(adapter.config.at("num_attention_heads") == c.n_heads);
    CHECK(make(library, causal, n3)->injection().n_virtual == 3);
  }
  {
    const auto library = find_plugin("multitask_prompt_tuning", {});
    auto instance = make(library, seq2seq, n3);
    CHECK(instance->injection().n_virtual == 6);
    CHECK(instance->virtual_layout().input == 3);
    CHECK(instance->virtual_layout().decoder == 3);  // PEFT prepends them to the decoder
    const auto adapter = instance->export_adapter();
    CHECK(adapter.tensors.at("prefix_task_cols").first == std::vector<int64_t>{1, 6, 1});
    CHECK(adapter.config.at("num_transformer_submodules") == 2);
  }
  {
    const auto library = find_plugin("prefix_tuning", {});
    auto instance = make(library, seq2seq, n3);
    CHECK(instance->injection().n_virtual == 0);
    CHECK(instance->injection().n_prefix == 3);
    const auto adapter = instance->export_adapter();
    CHECK(adapter.config.at("task_type") == "SEQ_2_SEQ_LM");
    CHECK(adapter.config.at("num_transformer_submodules") == 2);
    CHECK(adapter.config.at("num_layers") == c.n_layers);
    CHECK(adapter.config.at("token_dim") == c.n_kv_heads * c.head_dim);
    CHECK(adapter.config.at("num_attention_heads") == c.n_kv_heads);
  }
}

TEST_CASE("a task type the plugin does not declare is refused with a reason", "[abi]") {
  const auto library = PluginLibrary::load(test_plugin("causal_only_prompt"));
  CHECK(declared_task_types(library->descriptor()) == std::vector<TaskType>{TaskType::kCausalLm});
  const ph::Model model = ph::make_random_model(ph::test::tiny_llama_config(), 5);
  const ModelHost causal(model, nullptr);
  CHECK(make(library, causal)->injection().n_virtual == 4);

  const ModelHost cls(model, nullptr, TaskType::kSeqCls);
  const std::string why = ph::test::error_of([&] { make(library, cls); });
  INFO(why);
  CHECK(contains(why,
                 "plugin causal_only_prompt (PROMPT_TUNING) does not support task type "
                 "SEQ_CLS: it supports CAUSAL_LM"));

  // The SDK refuses it too, for a host that asks anyway.
  ph_method* out = nullptr;
  ph_status* status = library->entry().create(cls.table(), &cls.info(), "{}", 1, 0, &out);
  REQUIRE(status != nullptr);
  CHECK(status_code(status) == PH_ERR_UNSUPPORTED);
  CHECK(contains(status_message(status), "does not support task type SEQ_CLS"));
  CHECK(out == nullptr);
  cls.table()->status_release(cls.table(), status);
}
