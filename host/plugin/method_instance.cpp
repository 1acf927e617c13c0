// A method instance from the host's side. Everything the plugin reports is checked once,
// at creation, so the trainer can then use the parameter pointers and the spec directly.
#include "host/plugin/method_instance.h"

#include <array>
#include <cmath>
#include <cstddef>
#include <limits>
#include <set>

#include "host/plugin/abi_v1_0.h"
#include "host/plugin/dl_tensor.h"
#include "host/plugin/plugin_call.h"
#include "host/plugin/status.h"
#include "host/plugin/task_types.h"
#include "models/common/error.h"

namespace ph::host {

namespace {

// A DLTensor over a host-owned compact row-major xtensor.
template <size_t N>
struct DlView {
  explicit DlView(const xt::xtensor<float, N>& t) {
    for (size_t i = 0; i < N; ++i) shape[i] = (int64_t)t.shape(i);
    dl.data = const_cast<float*>(t.data());  // read-only when passed as const DLTensor*
    dl.device = {kDLCPU, 0};
    dl.ndim = (int)N;
    dl.dtype = kFloat32;
    dl.shape = shape.data();
    dl.strides = nullptr;
    dl.byte_offset = 0;
  }
  std::array<int64_t, N> shape{};
  DLTensor dl{};
};

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

template <class Tensor>
std::vector<int64_t> shape_of(const Tensor& t) {
  return std::vector<int64_t>(t.shape().begin(), t.shape().end());
}

// ---- the export sink and import source (host-side callbacks: never throw)

ph_status* sink_put_tensor(const ph_tensor_sink* sink, const char* name,
                           const DLTensor* t) noexcept {
  try {
    auto& adapter = *static_cast<MethodInstance::Adapter*>(sink->sink_data);
    if (!name || !*name)
      return new_status(PH_ERR_INVALID_ARGUMENT, "put_tensor: a tensor without a name");
    const std::string problem = tensor_problem(t, kFloat32, -1);
    if (!problem.empty())
      return new_status(PH_ERR_INVALID_ARGUMENT,
                        std::string("put_tensor \"") + name + "\": the tensor " + problem);
    if (adapter.tensors.count(name))
      return new_status(PH_ERR_INVALID_ARGUMENT,
                        std::string("put_tensor: tensor \"") + name + "\" exported twice");
    std::vector<int64_t> shape(t->shape, t->shape + t->ndim);
    std::vector<float> values((size_t)element_count(*t));
    const float* base = element_base<const float>(*t);
    for_each_offset(*t, [&](int64_t i, int64_t offset) { values[i] = base[offset]; });
    adapter.tensors[name] = {std::move(shape), std::move(values)};
    return nullptr;
  } catch (const std::exception& e) {
    return new_status(PH_ERR_INTERNAL, std::string("put_tensor: ") + e.what());
  }
}

ph_status* sink_put_config(const ph_tensor_sink* sink, const char* json_object) noexcept {
  try {
    auto& adapter = *static_cast<MethodInstance::Adapter*>(sink->sink_data);
    const nlohmann::json fields =
        nlohmann::json::parse(json_object ? json_object : "", nullptr, /*allow_exceptions=*/false);
    if (!fields.is_object())
      return new_status(PH_ERR_INVALID_ARGUMENT, std::string("put_config: not a JSON object: ") +
                                                     (json_object ? json_object : "NULL"));
    adapter.config.update(fields);
    return nullptr;
  } catch (const std::exception& e) {
    return new_status(PH_ERR_INTERNAL, std::string("put_config: ") + e.what());
  }
}

// Borrowed DLTensor views of an adapter's tensors, alive during import_adapter.
struct SourceViews {
  std::map<std::string, DLTensor> tensors;
};

const DLTensor* source_get_tensor(const ph_tensor_source* source, const char* name) noexcept {
  if (!name) return nullptr;
  const auto& views = static_cast<const SourceViews*>(source->source_data)->tensors;
  auto it = views.find(name);
  return it == views.end() ? nullptr : &it->second;
}

}  // namespace

template <class Fn>
auto MethodInstance::in_plugin(const char* call, Fn&& fn) const {
  return in_plugin_call(library_->name(), call, std::forward<Fn>(fn));
}

std::string MethodInstance::context(const char* call) const {
  return std::string("plugin ") + library_->name() + ": " + call;
}

MethodInstance::MethodInstance(std::shared_ptr<PluginLibrary> library, const ModelHost& model_host,
                               const nlohmann::json& options, uint64_t seed, bool for_import)
    : library_(std::move(library)), model_host_(model_host), options_(options) {
  if (!library_) throw Error("MethodInstance: no plugin library");
  check_task_type_supported(library_->descriptor(), model_host_.task());
  const std::string config = options_.dump();
  const uint32_t flags = for_import ? (uint32_t)PH_CREATE_FOR_IMPORT : 0u;
  check_status(in_plugin("create",
                         [&] {
                           return library_->entry().create(model_host_.table(), &model_host_.info(),
                                                           config.c_str(), seed, flags, &method_);
                         }),
               context("create"));
  if (!method_) throw Error(context("create") + ": reported success but returned no instance");
  try {
    check_table();
    read_injection_spec();
    read_parameters();
  } catch (...) {
    if (method_->destroy) in_plugin("destroy", [&] { method_->destroy(method_); });
    method_ = nullptr;
    throw;
  }
}

MethodInstance::~MethodInstance() {
  if (method_) in_plugin("destroy", [&] { method_->destroy(method_); });
}

void MethodInstance::check_table() {
  if (method_->struct_size < abi_1_0::kMethodSize)
    throw Error(context("create") + ": the instance table is too small (struct_size " +
                std::to_string(method_->struct_size) + " < " +
                std::to_string(abi_1_0::kMethodSize) + ", ABI 1.0's ph_method)");
  const char* missing = !method_->destroy           ? "destroy"
                        : !method_->injection       ? "injection"
                        : !method_->parameter_count ? "parameter_count"
                        : !method_->parameter       ? "parameter"
                        : !method_->forward         ? "forward"
                        : !method_->backward        ? "backward"
                        : !method_->export_adapter  ? "export_adapter"
                        : !method_->import_adapter  ? "import_adapter"
                                                    : nullptr;
  if (missing) throw Error(context("create") + ": the instance table's " + missing + " is NULL");
}

void MethodInstance::read_injection_spec() {
  const ph_injection_spec* spec =
      in_plugin("injection", [&] { return method_->injection(method_); });
  const std::string where = context("injection");
  if (!spec) throw Error(where + ": returned NULL");
  if (spec->struct_size < abi_1_0::kInjectionSpecSize)
    throw Error(where + ": the spec is too small (struct_size " +
                std::to_string(spec->struct_size) + " < " +
                std::to_string(abi_1_0::kInjectionSpecSize) + ")");
  const int max_positions = model_host_.info().max_positions;
  if (spec->n_virtual < 0 || spec->n_virtual > max_positions || spec->n_prefix < 0 ||
      spec->n_prefix > max_positions)
    throw Error(where + ": n_virtual " + std::to_string(spec->n_virtual) + " and n_prefix " +
                std::to_string(spec->n_prefix) + " must be in [0, " +
                std::to_string(max_positions) + "] (the model's context)");
  if (spec->per_example != 0 && spec->per_example != 1)
    throw Error(where + ": per_example is " + std::to_string(spec->per_example) + ", not 0 or 1");
  spec_ = ph_injection_spec{};
  spec_.struct_size = sizeof(ph_injection_spec);
  spec_.n_virtual = spec->n_virtual;
  spec_.per_example = spec->per_example;
  spec_.n_prefix = spec->n_prefix;
  read_virtual_layout(*spec, where);
  spec_.n_input_virtual = layout_.input;
  spec_.n_decoder_virtual = layout_.decoder;
  if (spec->template_text) {
    template_ = spec->template_text;
    spec_.template_text = template_.c_str();
  }
  read_adapter_spec(*spec, where);
}

// Since 1.2: LLaMA-Adapter's prompts in the top layers, for llama/gpt2 causal LMs only,
// written through forward_injection (a 1.0/1.1 table cannot carry them).
void MethodInstance::read_adapter_spec(const ph_injection_spec& spec, const std::string& where) {
  if (!PH_HAS(&spec, ph_injection_spec, adapter_layers) ||
      (spec.adapter_len == 0 && spec.adapter_layers == 0))
    return;
  const ModelConfig& c = model_host_.model().config;
  if (spec.adapter_len < 1 || spec.adapter_len > c.max_positions || spec.adapter_layers < 1 ||
      spec.adapter_layers > c.n_layers)
    throw Error(where + ": adapter_len " + std::to_string(spec.adapter_len) +
                " and adapter_layers " + std::to_string(spec.adapter_layers) + " must be in [1, " +
                std::to_string(c.max_positions) + "] and [1, " + std::to_string(c.n_layers) +
                "] (the model's context and layers), or both 0");
  if (c.stacks != Stacks::kDecoder || c.adapter_join == AdapterJoin::kNone)
    throw Error(where + ": adapter prompts (LLaMA-Adapter) work on llama and gpt2 decoders, not "
                "on the " + std::string(arch_name(c.arch)) + " family");
  if (model_host_.task() != TaskType::kCausalLm)
    throw Error(where + ": adapter prompts (LLaMA-Adapter) need the CAUSAL_LM task type, not " +
                task_type_name(model_host_.task()));
  if (!has_injection_calls())
    throw Error(where + ": the spec has adapter prompts, but the instance table has no "
                "forward_injection/backward_injection to write them");
  spec_.adapter_len = spec.adapter_len;
  spec_.adapter_layers = spec.adapter_layers;
}

bool MethodInstance::has_injection_calls() const {
  return PH_HAS(method_, ph_method, backward_injection) && method_->forward_injection &&
         method_->backward_injection;
}

void MethodInstance::read_virtual_layout(const ph_injection_spec& spec, const std::string& where) {
  layout_ = VirtualLayout{spec.n_virtual, 0};
  if (!PH_HAS(&spec, ph_injection_spec, n_decoder_virtual) ||
      (spec.n_input_virtual == 0 && spec.n_decoder_virtual == 0))
    return;  // 1.0's meaning: every row in the input
  if (spec.n_input_virtual < 0 || spec.n_decoder_virtual < 0 ||
      (int64_t)spec.n_input_virtual + spec.n_decoder_virtual > spec.n_virtual)
    throw Error(where + ": n_input_virtual " + std::to_string(spec.n_input_virtual) +
                " and n_decoder_virtual " + std::to_string(spec.n_decoder_virtual) +
                " must be >= 0 and together at most n_virtual " + std::to_string(spec.n_virtual));
  if (spec.n_decoder_virtual > 0 && model_host_.task() != TaskType::kSeq2SeqLm)
    throw Error(where + ": " + std::to_string(spec.n_decoder_virtual) +
                " virtual tokens for the decoder, but the task type is " +
                task_type_name(model_host_.task()) + " (only SEQ_2_SEQ_LM has a decoder input)");
  layout_ = VirtualLayout{spec.n_input_virtual, spec.n_decoder_virtual};
}

void MethodInstance::read_parameters() {
  const uint32_t count =
      in_plugin("parameter_count", [&] { return method_->parameter_count(method_); });
  std::set<std::string> names;
  for (uint32_t i = 0; i < count; ++i) {
    ph_parameter p{};
    check_status(in_plugin("parameter", [&] { return method_->parameter(method_, i, &p); }),
                 context("parameter"));
    const std::string where = context("parameter") + " #" + std::to_string(i);
    if (p.struct_size < abi_1_0::kParameterSize)
      throw Error(where + ": struct_size " + std::to_string(p.struct_size) + " < " +
                  std::to_string(abi_1_0::kParameterSize) + " (ABI 1.0's ph_parameter)");
    if (!p.name || !*p.name) throw Error(where + " has no name");
    const std::string named = context("parameter") + " " + p.name;
    if (!names.insert(p.name).second) throw Error(named + " is reported twice");
    for (const DLTensor* t : {p.value, p.grad}) {
      const char* which = t == p.value ? "value" : "grad";
      const std::string problem = tensor_problem(t, kFloat32, -1);
      if (!problem.empty()) throw Error(named + ": " + which + " " + problem);
      // The optimizer walks the memory as one array; a strided view would be misread.
      if (!is_compact(*t))
        throw Error(named + ": " + which + " is not compact row-major (shape " + shape_string(*t) +
                    "); the host needs parameters in contiguous memory");
    }
    const std::vector<int64_t> shape(p.value->shape, p.value->shape + p.value->ndim);
    if (std::vector<int64_t>(p.grad->shape, p.grad->shape + p.grad->ndim) != shape)
      throw Error(named + ": grad has shape " + shape_string(*p.grad) + ", value " +
                  shape_string(*p.value));
    ParameterView view;
    view.name = p.name;
    view.shape = shape;
    view.numel = (size_t)element_count(*p.value);
    view.value = element_base<float>(*p.value);
    view.grad = element_base<float>(*p.grad);
    parameters_.push_back(std::move(view));
  }
}

size_t MethodInstance::parameter_count_total() const {
  size_t total = 0;
  for (const auto& p : parameters_) total += p.numel;
  return total;
}

Injection MethodInstance::forward(int64_t batch_size, const std::vector<int64_t>& task_ids,
                                  bool train, int64_t step) {
  const std::string where = context("forward");
  if (batch_size < 1) throw Error(where + ": batch size " + std::to_string(batch_size) + " < 1");
  if (!task_ids.empty() && (int64_t)task_ids.size() != batch_size)
    throw Error(where + ": " + std::to_string(task_ids.size()) + " task ids for a batch of " +
                std::to_string(batch_size));
  const ph_model_info& m = model_host_.info();
  const size_t sets = spec_.per_example ? (size_t)batch_size : 1;
  // NaN-filled, so an element the plugin does not write is caught below instead of
  // training on whatever the allocator left there.
  const float nan = std::numeric_limits<float>::quiet_NaN();
  Injection injection;
  if (spec_.n_virtual > 0)
    injection.virtual_tokens = xt::xtensor<float, 3>(
        std::array<size_t, 3>{sets, (size_t)spec_.n_virtual, (size_t)m.dim}, nan);
  if (spec_.n_prefix > 0)
    injection.prefix =
        xt::xtensor<float, 5>(std::array<size_t, 5>{(size_t)m.n_layers, 2, (size_t)m.n_kv_heads,
                                                    (size_t)spec_.n_prefix, (size_t)m.head_dim},
                              nan);
  const bool adapters = spec_.adapter_layers > 0;
  if (adapters) {
    injection.adapter_prompts = xt::xtensor<float, 3>(
        std::array<size_t, 3>{(size_t)spec_.adapter_layers, (size_t)spec_.adapter_len,
                              (size_t)m.dim},
        nan);
    injection.adapter_gates =
        xt::xtensor<float, 1>(std::array<size_t, 1>{(size_t)spec_.adapter_layers}, nan);
  }
  DlView<3> virtual_view(injection.virtual_tokens);
  DlView<5> prefix_view(injection.prefix);
  DlView<3> prompts_view(injection.adapter_prompts);
  DlView<1> gates_view(injection.adapter_gates);
  const ph_batch batch{sizeof(ph_batch), batch_size, task_ids.empty() ? nullptr : task_ids.data(),
                       step};
  DLTensor* virtual_dl = spec_.n_virtual > 0 ? &virtual_view.dl : nullptr;
  DLTensor* prefix_dl = spec_.n_prefix > 0 ? &prefix_view.dl : nullptr;
  if (has_injection_calls()) {
    const ph_injection_tensors tensors{sizeof(ph_injection_tensors), virtual_dl, prefix_dl,
                                       adapters ? &prompts_view.dl : nullptr,
                                       adapters ? &gates_view.dl : nullptr};
    // named "forward" like the 1.0 call: the same step of the method, for reports
    check_status(in_plugin("forward",
                           [&] {
                             return method_->forward_injection(method_, &batch, train ? 1 : 0,
                                                               &tensors);
                           }),
                 where);
  } else {
    check_status(in_plugin("forward",
                           [&] {
                             return method_->forward(method_, &batch, train ? 1 : 0, virtual_dl,
                                                     prefix_dl);
                           }),
                 where);
  }
  auto check_finite = [&](const float* data, size_t n, const char* what) {
    for (size_t i = 0; i < n; ++i)
      if (!std::isfinite(data[i]))
        throw Error(where + ": element " + std::to_string(i) + " of " + what +
                    " is not finite (not written, or the method diverged)");
  };
  check_finite(injection.virtual_tokens.data(), injection.virtual_tokens.size(), "virtual_tokens");
  check_finite(injection.prefix.data(), injection.prefix.size(), "prefix");
  check_finite(injection.adapter_prompts.data(), injection.adapter_prompts.size(),
               "adapter_prompts");
  check_finite(injection.adapter_gates.data(), injection.adapter_gates.size(), "adapter_gates");
  return injection;
}

void MethodInstance::backward(int64_t batch_size, const std::vector<int64_t>& task_ids,
                              const InjectionGrad& grad, int64_t step) {
  const std::string where = context("backward");
  if (batch_size < 1) throw Error(where + ": batch size " + std::to_string(batch_size) + " < 1");
  if (!task_ids.empty() && (int64_t)task_ids.size() != batch_size)
    throw Error(where + ": " + std::to_string(task_ids.size()) + " task ids for a batch of " +
                std::to_string(batch_size));
  const ph_model_info& m = model_host_.info();
  const int64_t sets = spec_.per_example ? batch_size : 1;
  const std::vector<int64_t> want_virtual = spec_.n_virtual > 0
                                                ? std::vector<int64_t>{sets, spec_.n_virtual, m.dim}
                                                : std::vector<int64_t>{};
  const std::vector<int64_t> want_prefix =
      spec_.n_prefix > 0
          ? std::vector<int64_t>{m.n_layers, 2, m.n_kv_heads, spec_.n_prefix, m.head_dim}
          : std::vector<int64_t>{};
  auto check_shape = [&](const std::vector<int64_t>& have, size_t size,
                         const std::vector<int64_t>& want, const char* what) {
    if (want.empty() ? size != 0 : have != want)
      throw Error(where + ": the gradient of " + what + " has shape " + shape_text(have) +
                  ", expected " +
                  (want.empty() ? "none (the method injects none)" : shape_text(want)));
  };
  check_shape(shape_of(grad.virtual_tokens), grad.virtual_tokens.size(), want_virtual,
              "virtual_tokens");
  check_shape(shape_of(grad.prefix), grad.prefix.size(), want_prefix, "prefix");
  const bool adapters = spec_.adapter_layers > 0;
  check_shape(shape_of(grad.adapter_prompts), grad.adapter_prompts.size(),
              adapters ? std::vector<int64_t>{spec_.adapter_layers, spec_.adapter_len, m.dim}
                       : std::vector<int64_t>{},
              "adapter_prompts");
  check_shape(shape_of(grad.adapter_gates), grad.adapter_gates.size(),
              adapters ? std::vector<int64_t>{spec_.adapter_layers} : std::vector<int64_t>{},
              "adapter_gates");
  DlView<3> virtual_view(grad.virtual_tokens);
  DlView<5> prefix_view(grad.prefix);
  DlView<3> prompts_view(grad.adapter_prompts);
  DlView<1> gates_view(grad.adapter_gates);
  const ph_batch batch{sizeof(ph_batch), batch_size, task_ids.empty() ? nullptr : task_ids.data(),
                       step};
  DLTensor* virtual_dl = spec_.n_virtual > 0 ? &virtual_view.dl : nullptr;
  DLTensor* prefix_dl = spec_.n_prefix > 0 ? &prefix_view.dl : nullptr;
  if (has_injection_calls()) {
    const ph_injection_tensors grads{sizeof(ph_injection_tensors), virtual_dl, prefix_dl,
                                     adapters ? &prompts_view.dl : nullptr,
                                     adapters ? &gates_view.dl : nullptr};
    check_status(in_plugin("backward",
                           [&] { return method_->backward_injection(method_, &batch, &grads); }),
                 where);
  } else {
    check_status(in_plugin("backward",
                           [&] {
                             return method_->backward(method_, &batch, virtual_dl, prefix_dl);
                           }),
                 where);
  }
}

void MethodInstance::zero_grad() {
  for (const auto& p : parameters_) std::fill(p.grad, p.grad + p.numel, 0.0f);
}

bool MethodInstance::scores_labels() const {
  return PH_HAS(method_, ph_method, score_labels) && method_->score_labels;
}

void MethodInstance::score_labels(std::vector<Sequence>& batch,
                                  const std::vector<std::vector<int64_t>>& kinds,
                                  const std::vector<int64_t>& task_ids, int64_t step) {
  if (!scores_labels() || batch.empty()) return;
  const std::string where = context("score_labels");
  if (kinds.size() != batch.size())
    throw Error(where + ": " + std::to_string(kinds.size()) + " kind lists for " +
                std::to_string(batch.size()) + " sequences");
  // The arrays the plugin sees, one set per sequence, alive for the call.
  struct Arrays {
    std::vector<int64_t> slots, tokens, labels;
    std::vector<float> weights;
  };
  std::vector<Arrays> arrays(batch.size());
  std::vector<ph_scored_sequence> scored(batch.size());
  for (size_t b = 0; b < batch.size(); ++b) {
    const Sequence& s = batch[b];
    const size_t n = s.tokens.size();
    if (kinds[b].size() != n)
      throw Error(where + ": sequence " + std::to_string(b) + " has " + std::to_string(n) +
                  " tokens but " + std::to_string(kinds[b].size()) + " kinds");
    Arrays& a = arrays[b];
    for (size_t t = 0; t < n; ++t) {
      const bool slot = is_virtual(s.tokens[t]);
      a.slots.push_back(slot ? virtual_index(s.tokens[t]) : -1);
      a.tokens.push_back(slot ? 0 : s.tokens[t]);
      a.labels.push_back(slot || s.labels.empty() ? kIgnoreLabel : s.labels[t]);
    }
    a.weights.assign(n, 1.0f);
    scored[b] = ph_scored_sequence{sizeof(ph_scored_sequence),
                                   (int64_t)n,
                                   a.slots.data(),
                                   a.tokens.data(),
                                   kinds[b].data(),
                                   a.labels.data(),
                                   a.weights.data()};
  }
  const ph_batch info{sizeof(ph_batch), (int64_t)batch.size(),
                      task_ids.empty() ? nullptr : task_ids.data(), step};
  check_status(in_plugin("score_labels",
                         [&] { return method_->score_labels(method_, &info, scored.data()); }),
               where);
  const int64_t vocab = model_host_.info().vocab_size;
  for (size_t b = 0; b < batch.size(); ++b) {
    Sequence& s = batch[b];
    const Arrays& a = arrays[b];
    s.labels.assign(a.labels.size(), kIgnoreLabel);
    s.label_weights = a.weights;
    for (size_t t = 0; t < a.labels.size(); ++t) {
      const std::string at =
          where + ": sequence " + std::to_string(b) + " position " + std::to_string(t) + ": ";
      if (a.labels[t] != kIgnoreLabel && (a.labels[t] < 0 || a.labels[t] >= vocab))
        throw Error(at + "label " + std::to_string(a.labels[t]) +
                    " is neither -100 nor in the vocabulary of " + std::to_string(vocab));
      if (!std::isfinite(a.weights[t]) || a.weights[t] < 0)
        throw Error(at + "loss weight " + std::to_string(a.weights[t]) +
                    " is not a finite number >= 0");
      s.labels[t] = (int32_t)a.labels[t];
    }
  }
}

void MethodInstance::after_step(int64_t step) {
  if (!PH_HAS(method_, ph_method, after_step) || !method_->after_step) return;
  const std::string where = context("after_step");
  check_status(in_plugin("after_step", [&] { return method_->after_step(method_, step); }), where);
  for (const auto& p : parameters_)
    for (size_t i = 0; i < p.numel; ++i)
      if (!std::isfinite(p.value[i]))
        throw Error(where + ": element " + std::to_string(i) + " of parameter " + p.name +
                    " is not finite after step " + std::to_string(step));
}

MethodInstance::Adapter MethodInstance::export_adapter() const {
  Adapter adapter;
  const ph_tensor_sink sink{sizeof(ph_tensor_sink), &adapter, &sink_put_tensor, &sink_put_config};
  check_status(in_plugin("export_adapter", [&] { return method_->export_adapter(method_, &sink); }),
               context("export_adapter"));
  return adapter;
}

void MethodInstance::import_adapter(const Adapter& adapter) {
  SourceViews views;
  for (const auto& [name, tensor] : adapter.tensors) {
    const auto& [shape, values] = tensor;
    int64_t numel = 1;
    for (int64_t s : shape) numel *= s;
    if (numel != (int64_t)values.size())
      throw Error(context("import_adapter") + ": tensor " + name + " has shape " +
                  shape_text(shape) + " but " + std::to_string(values.size()) + " values");
    DLTensor dl{};
    dl.data = const_cast<float*>(values.data());  // the plugin gets it as const DLTensor*
    dl.device = {kDLCPU, 0};
    dl.ndim = (int)shape.size();
    dl.dtype = kFloat32;
    dl.shape = const_cast<int64_t*>(shape.data());
    views.tensors[name] = dl;
  }
  const std::string config = adapter.config.dump();
  const ph_tensor_source source{sizeof(ph_tensor_source), &views, &source_get_tensor,
                                config.c_str()};
  check_status(
      in_plugin("import_adapter", [&] { return method_->import_adapter(method_, &source); }),
      context("import_adapter"));
}

std::optional<MethodInstance::Teacher> MethodInstance::teacher() const {
  if (!PH_HAS(method_, ph_method, teacher) || !method_->teacher) return std::nullopt;
  const ph_teacher_spec* spec = in_plugin("teacher", [&] { return method_->teacher(method_); });
  if (!spec) return std::nullopt;
  const std::string where = context("teacher");
  if (spec->struct_size < offsetof(ph_teacher_spec, n_context_ids) + sizeof(int64_t))
    throw Error(where + ": struct_size " + std::to_string(spec->struct_size) +
                " is too small for ph_teacher_spec");
  if (spec->top_k < 1) throw Error(where + ": top_k " + std::to_string(spec->top_k) + " < 1");
  if (!std::isfinite(spec->temperature) || spec->temperature < 0.0f)
    throw Error(where + ": temperature " + std::to_string(spec->temperature) +
                " is not a finite number >= 0");
  if (spec->n_context_ids < 0 || (spec->n_context_ids > 0 && !spec->context_ids))
    throw Error(where + ": n_context_ids " + std::to_string(spec->n_context_ids) +
                " without context_ids");
  const int vocab = model_host_.info().vocab_size;
  Teacher t{spec->top_k, spec->temperature, {}};
  if (spec->struct_size >= offsetof(ph_teacher_spec, labeled_only) + sizeof(int32_t)) {
    if (spec->labeled_only != 0 && spec->labeled_only != 1)
      throw Error(where + ": labeled_only " + std::to_string(spec->labeled_only) +
                  " is neither 0 nor 1");
    t.labeled_only = spec->labeled_only == 1;
  }
  for (int64_t i = 0; i < spec->n_context_ids; ++i) {
    const int64_t id = spec->context_ids[i];
    if (id < 0 || id >= vocab)
      throw Error(where + ": context id " + std::to_string(id) + " at " + std::to_string(i) +
                  " is outside the vocabulary of " + std::to_string(vocab));
    t.context_ids.push_back((int32_t)id);
  }
  return t;
}

}  // namespace ph::host
