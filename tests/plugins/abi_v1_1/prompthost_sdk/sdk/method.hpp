// Write a method plugin as a C++ class; PH_EXPORT_METHOD turns it into the ABI's
// exported entry, with every exception caught at the boundary.
//
//   class MyMethod : public ph::sdk::Method {
//    public:
//     explicit MyMethod(const ph::sdk::MethodContext& ctx);
//     ... override injection/forward/backward/export_adapter/import_adapter ...
//   };
//   PH_EXPORT_METHOD(MyMethod, kDescriptor)
//
// See docs/writing-a-plugin.md and examples/.
#pragma once

#include <memory>
#include <new>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "prompthost_sdk/plugin_abi.h"
#include "prompthost_sdk/sdk/errors.hpp"
#include "prompthost_sdk/sdk/model.hpp"
#include "prompthost_sdk/sdk/tensor.hpp"

namespace ph::sdk {

// What a method instance is created with.
struct MethodContext {
  const ph_host* host = nullptr;  // valid for the instance's life; serves ph.host.model/1
  // Every field of this SDK's ABI, whatever the host's minor (complete_model_info).
  ph_model_info model{};
  nlohmann::json config;  // every declared option, defaults filled in
  uint64_t seed = 0;
  // PH_CREATE_FOR_IMPORT: the parameters will be overwritten by import_adapter at once,
  // so initialisation that reads files or runs the model may be skipped.
  bool for_import = false;

  const ph_host_random& random() const { return service<ph_host_random>(PH_SERVICE_RANDOM); }
  const ph_host_model& model_service() const { return service<ph_host_model>(PH_SERVICE_MODEL); }

  // Token ids of `text` from the model's tokenizer (no BOS/EOS).
  std::vector<int64_t> tokenize(const std::string& text) const {
    std::vector<int64_t> ids(256);
    int64_t count = 0;
    for (;;) {  // the host reports the full count when the buffer is too small
      BorrowedTensor<int64_t> dl(ids.data(), {(int64_t)ids.size()});
      check(model_service().tokenize(host, text.c_str(), dl.dl(), &count));
      if (count <= (int64_t)ids.size()) break;
      ids.resize(count);
    }
    ids.resize(count);
    return ids;
  }

  // PEFT's TEXT initialisation: the frozen embeddings of `ids` repeated and cut to the
  // rows of `out` ([n, dim]). `ids` must not be empty.
  void embed_tiled(const std::vector<int64_t>& ids, DLTensor* out) const {
    const int64_t n = out->shape[0];
    std::vector<int64_t> tiled(n);
    for (int64_t i = 0; i < n; ++i) tiled[i] = ids[i % ids.size()];
    BorrowedTensor<int64_t> dl(tiled.data(), {n});
    check(model_service().embed(host, dl.dl(), out));
  }

  template <class T>
  const T& service(const char* id) const {
    const void* s = host->get_service(host, id);
    if (!s) throw Error(PH_ERR_UNSUPPORTED, std::string("the host has no service ") + id);
    return *static_cast<const T*>(s);
  }
};

struct Batch {
  int64_t size = 0;
  const int64_t* task_ids = nullptr;  // [size] or null
  int64_t step = 0;                   // optimizer step (for dropout streams)
};

// An injection spec of n virtual tokens (all in the input, no template, no prefix);
// set the other fields on the result as needed.
inline ph_injection_spec virtual_tokens_spec(int32_t n_virtual, bool per_example = false) {
  ph_injection_spec spec{};
  spec.struct_size = sizeof spec;
  spec.n_virtual = n_virtual;
  spec.per_example = per_example ? 1 : 0;
  return spec;
}

class Method {
 public:
  explicit Method(const MethodContext& ctx) : host_(ctx.host) {}
  virtual ~Method() = default;
  Method(const Method&) = delete;
  Method& operator=(const Method&) = delete;

  // The injection, fixed at creation. template_text (if any) must point into the object.
  virtual ph_injection_spec injection() const = 0;
  // Writes the injection (see ph_method.forward).
  virtual void forward(const Batch& batch, bool train, DLTensor* virtual_tokens,
                       DLTensor* prefix) = 0;
  // Adds d loss / d parameters to the parameters' gradients (see ph_method.backward).
  virtual void backward(const Batch& batch, const DLTensor* grad_virtual,
                        const DLTensor* grad_prefix) = 0;
  virtual void export_adapter(const ph_tensor_sink& sink) const = 0;
  virtual void import_adapter(const ph_tensor_source& source) = 0;

  struct Parameter {
    std::string name;
    Tensor value;
    Tensor grad;
  };
  size_t parameter_count() const { return parameters_.size(); }
  Parameter& parameter(size_t i) { return *parameters_.at(i); }

 protected:
  // Registers a trainable tensor under PEFT's module path ("embedding.weight").
  Parameter& add_parameter(const std::string& name, const std::vector<size_t>& shape) {
    parameters_.push_back(
        std::make_unique<Parameter>(Parameter{name, Tensor(shape), Tensor(shape)}));
    return *parameters_.back();
  }
  const ph_host* host() const { return host_; }

  // Hands a tensor to an export sink.
  static void put_tensor(const ph_tensor_sink& sink, const char* name, const DLTensor* t) {
    check(sink.put_tensor(&sink, name, t));
  }
  static void put_config(const ph_tensor_sink& sink, const nlohmann::json& fields) {
    check(sink.put_config(&sink, fields.dump().c_str()));
  }
  // The named tensor of an adapter being imported; throws naming it when absent.
  static const DLTensor& get_tensor(const ph_tensor_source& source, const char* name) {
    const DLTensor* t = source.get_tensor(&source, name);
    if (!t) throw Error(PH_ERR_DATA_LOSS, std::string("adapter has no tensor ") + name);
    return *t;
  }
  // The same, checked to have `shape`; `meaning` says what the dimensions are, for the
  // error ("num_virtual_tokens, the model's hidden size").
  static const DLTensor& get_tensor(const ph_tensor_source& source, const char* name,
                                    const std::vector<int64_t>& shape, const char* meaning) {
    const DLTensor& t = get_tensor(source, name);
    bool ok = t.ndim == (int)shape.size();
    for (int i = 0; ok && i < t.ndim; ++i) ok = t.shape[i] == shape[i];
    if (!ok) {
      std::string want = "[";
      for (size_t i = 0; i < shape.size(); ++i) want += (i ? ", " : "") + std::to_string(shape[i]);
      throw Error(PH_ERR_DATA_LOSS, std::string(name) + " is " + shape_string(t) + ", expected " +
                                        want + "] (" + meaning + ")");
    }
    return t;
  }

 private:
  const ph_host* host_;
  std::vector<std::unique_ptr<Parameter>> parameters_;
};

namespace detail {

// Runs fn, turning any exception into a status made by `host`.
template <class Fn>
ph_status* guard(const ph_host* host, Fn&& fn) noexcept {
  try {
    fn();
    return nullptr;
  } catch (const HostStatus& s) {
    return s.release();
  } catch (const Error& e) {
    return host->status_new(host, e.code(), e.what());
  } catch (const nlohmann::json::exception& e) {
    return host->status_new(host, PH_ERR_INVALID_CONFIG, e.what());
  } catch (const std::bad_alloc&) {
    return host->status_new(host, PH_ERR_OUT_OF_MEMORY, "out of memory");
  } catch (const std::exception& e) {
    return host->status_new(host, PH_ERR_INTERNAL, e.what());
  } catch (...) {
    return host->status_new(host, PH_ERR_INTERNAL, "unknown exception in plugin");
  }
}

// The ABI object of one instance: the table the host sees, and the C++ method.
struct Instance {
  ph_method table{};
  const ph_host* host = nullptr;
  std::unique_ptr<Method> method;
  ph_injection_spec spec{};
};

inline Instance& instance(const ph_method* self) {
  return *static_cast<Instance*>(self->method_data);
}

inline void destroy(ph_method* self) {
  delete &instance(self);
}

inline const ph_injection_spec* injection(const ph_method* self) {
  Instance& in = instance(self);
  try {
    in.spec = in.method->injection();
    in.spec.struct_size = sizeof(ph_injection_spec);
  } catch (...) {
    in.spec = ph_injection_spec{};
    in.spec.struct_size = sizeof(ph_injection_spec);
  }
  return &in.spec;
}

inline uint32_t parameter_count(const ph_method* self) {
  return (uint32_t)instance(self).method->parameter_count();
}

inline ph_status* parameter(const ph_method* self, uint32_t i, ph_parameter* out) {
  Instance& in = instance(self);
  return guard(in.host, [&] {
    if (i >= in.method->parameter_count())
      throw Error(PH_ERR_INVALID_ARGUMENT,
                  "parameter index " + std::to_string(i) + " out of range");
    Method::Parameter& p = in.method->parameter(i);
    *out = ph_parameter{sizeof(ph_parameter), p.name.c_str(), p.value.dl(), p.grad.dl()};
  });
}

inline Batch to_batch(const ph_batch* b) {
  if (!b) throw Error(PH_ERR_INVALID_ARGUMENT, "no batch");
  return Batch{b->batch_size, b->task_ids, PH_HAS(b, ph_batch, step) ? b->step : 0};
}

inline ph_status* forward(ph_method* self, const ph_batch* batch, int32_t train,
                          DLTensor* virtual_tokens, DLTensor* prefix) {
  Instance& in = instance(self);
  return guard(in.host,
               [&] { in.method->forward(to_batch(batch), train != 0, virtual_tokens, prefix); });
}

inline ph_status* backward(ph_method* self, const ph_batch* batch, const DLTensor* grad_virtual,
                           const DLTensor* grad_prefix) {
  Instance& in = instance(self);
  return guard(in.host, [&] { in.method->backward(to_batch(batch), grad_virtual, grad_prefix); });
}

inline ph_status* export_adapter(const ph_method* self, const ph_tensor_sink* sink) {
  Instance& in = instance(self);
  return guard(in.host, [&] { in.method->export_adapter(*sink); });
}

inline ph_status* import_adapter(ph_method* self, const ph_tensor_source* source) {
  Instance& in = instance(self);
  return guard(in.host, [&] { in.method->import_adapter(*source); });
}

inline const void* get_extension(const ph_method*, const char*) {
  return nullptr;
}

// Refuses a task type the descriptor does not list, naming the ones it does.
inline void check_task_type(const ph_method_descriptor& d, ph_task_type task) {
  if (supports_task_type(d, task)) return;
  std::string listed;
  for (uint32_t i = 0; i < d.n_task_types; ++i)
    listed += std::string(i ? ", " : "") + task_type_name(d.task_types[i]);
  const char* name = task_type_name(task);
  throw Error(PH_ERR_UNSUPPORTED, std::string(d.name) + " does not support task type " +
                                      (*name ? name : std::to_string(task)) + " (it supports " +
                                      listed + ")");
}

template <class M>
ph_status* create(const ph_method_descriptor& descriptor, const ph_host* host,
                  const ph_model_info* model, const char* config_json, uint64_t seed,
                  uint32_t flags, ph_method** out) {
  return guard(host, [&] {
    if (!model || !out) throw Error(PH_ERR_INVALID_ARGUMENT, "create: null model or output");
    MethodContext ctx;
    ctx.host = host;
    ctx.model = complete_model_info(*model);
    check_task_type(descriptor, ctx.model.task_type);
    ctx.config = nlohmann::json::parse(config_json ? config_json : "{}");
    if (!ctx.config.is_object()) throw Error(PH_ERR_INVALID_CONFIG, "config is not a JSON object");
    ctx.seed = seed;
    ctx.for_import = (flags & PH_CREATE_FOR_IMPORT) != 0;
    auto in = std::make_unique<Instance>();
    in->host = host;
    in->method = std::make_unique<M>(ctx);
    in->table.struct_size = sizeof(ph_method);
    in->table.method_data = in.get();
    in->table.destroy = &detail::destroy;
    in->table.injection = &detail::injection;
    in->table.parameter_count = &detail::parameter_count;
    in->table.parameter = &detail::parameter;
    in->table.forward = &detail::forward;
    in->table.backward = &detail::backward;
    in->table.export_adapter = &detail::export_adapter;
    in->table.import_adapter = &detail::import_adapter;
    in->table.get_extension = &detail::get_extension;
    *out = &in.release()->table;
  });
}

// Checks the host speaks this plugin's ABI: same major, minor at least the plugin's.
inline ph_status* init(const ph_host* host) {
  if (!host) return nullptr;  // nothing to report the error with
  const int major = host->abi_major, minor = host->abi_minor;
  if (major != PH_ABI_MAJOR || minor < PH_ABI_MINOR)
    return host->status_new(
        host, PH_ERR_UNSUPPORTED,
        ("plugin needs ABI " + std::to_string(PH_ABI_MAJOR) + "." + std::to_string(PH_ABI_MINOR) +
         ", host speaks " + std::to_string(host->abi_major) + "." + std::to_string(host->abi_minor))
            .c_str());
  return nullptr;
}

inline void deinit() {}

}  // namespace detail
}  // namespace ph::sdk

// Exports `MethodClass` (a ph::sdk::Method with a MethodClass(const MethodContext&)
// constructor) described by `descriptor` (a static ph_method_descriptor) as this
// library's one symbol, ph_plugin_entry_v1. create refuses a task type the descriptor
// does not list (PH_ERR_UNSUPPORTED) before constructing the class.
#define PH_EXPORT_METHOD(MethodClass, descriptor)                                             \
  extern "C" PH_EXPORT const ph_plugin_entry* ph_plugin_entry_v1(void) {                      \
    static const ph_plugin_entry entry = {                                                    \
        sizeof(ph_plugin_entry),                                                              \
        PH_ABI_MAJOR,                                                                         \
        PH_ABI_MINOR,                                                                         \
        &ph::sdk::detail::init,                                                               \
        &ph::sdk::detail::deinit,                                                             \
        &(descriptor),                                                                        \
        [](const ph_host* host, const ph_model_info* model, const char* config_json,          \
           uint64_t seed, uint32_t flags, ph_method** out) -> ph_status* {                    \
          return ph::sdk::detail::create<MethodClass>((descriptor), host, model, config_json, \
                                                      seed, flags, out);                      \
        }};                                                                                   \
    return &entry;                                                                            \
  }
