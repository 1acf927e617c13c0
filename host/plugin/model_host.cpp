// ph.host.model/1: the frozen model and its tokenizer, served to method instances
// (initialisation from text or vocabulary). Every function checks its tensors before
// writing, so on error the outputs are untouched, and turns exceptions into statuses.
#include <cstring>
#include <string>

#include "host/plugin/dl_tensor.h"
#include "host/plugin/method_instance.h"
#include "host/plugin/status.h"
#include "host/plugin/task_types.h"

namespace ph::host {

struct ModelHost::Impl {
  Impl(const Model& m, const Tokenizer* t, TaskType k) : model(m), tokenizer(t), task(k) {}
  const Model& model;
  const Tokenizer* tokenizer;
  TaskType task;
  std::string arch;
  ph_model_info info{};
  ph_host_model service{};
  ph_host table{};
};

namespace {

const ph_host_model* served_model(const ph_host* host);

const void* model_get_service(const ph_host* host, const char* id) {
  if (id && !std::strcmp(id, PH_SERVICE_MODEL)) return served_model(host);
  return base_service(id);
}

// The ModelHost behind a host table, or NULL for a table that is not a ModelHost's
// (a plugin calling the model service with its init host, say).
const ModelHost::Impl* impl_of(const ph_host* host) {
  if (!host || host->get_service != &model_get_service || !host->host_data) return nullptr;
  return static_cast<const ModelHost::Impl*>(host->host_data);
}

const ph_host_model* served_model(const ph_host* host) {
  const ModelHost::Impl* impl = impl_of(host);
  return impl ? &impl->service : nullptr;
}

ph_status* invalid(const char* call, const std::string& problem) {
  return new_status(PH_ERR_INVALID_ARGUMENT,
                    std::string("ph.host.model/1 ") + call + ": " + problem);
}

// Runs body() (which returns a status) with the impl, turning exceptions into statuses.
template <class Body>
ph_status* serve(const char* call, const ph_host* host, bool needs_tokenizer,
                 Body&& body) noexcept {
  try {
    const ModelHost::Impl* impl = impl_of(host);
    if (!impl) return invalid(call, "called with a host table that serves no model");
    if (needs_tokenizer && !impl->tokenizer)
      return new_status(PH_ERR_UNSUPPORTED, std::string("ph.host.model/1 ") + call +
                                                ": the host has no tokenizer for this model");
    return body(*impl);
  } catch (const std::exception& e) {
    return new_status(PH_ERR_INTERNAL, std::string("ph.host.model/1 ") + call + ": " + e.what());
  }
}

ph_status* tokenize(const ph_host* host, const char* text, DLTensor* ids, int64_t* count) {
  return serve("tokenize", host, true, [&](const ModelHost::Impl& impl) -> ph_status* {
    if (!text || !count) return invalid("tokenize", "text and count must not be NULL");
    if (ids) {
      const std::string problem = tensor_problem(ids, kInt64, 1);
      if (!problem.empty()) return invalid("tokenize", "the ids tensor " + problem);
    }
    const std::vector<int32_t> tokens = impl.tokenizer->encode(text);
    if (ids) {
      int64_t* base = element_base<int64_t>(*ids);
      for_each_offset(*ids, [&](int64_t i, int64_t offset) {
        if (i < (int64_t)tokens.size()) base[offset] = tokens[i];
      });
    }
    *count = (int64_t)tokens.size();
    return nullptr;
  });
}

ph_status* embed(const ph_host* host, const DLTensor* ids, DLTensor* out) {
  return serve("embed", host, false, [&](const ModelHost::Impl& impl) -> ph_status* {
    const ModelConfig& c = impl.model.config;
    std::string problem = tensor_problem(ids, kInt64, 1);
    if (!problem.empty()) return invalid("embed", "the ids tensor " + problem);
    problem = tensor_problem(out, kFloat32, 2);
    if (!problem.empty()) return invalid("embed", "the output tensor " + problem);
    const int64_t n = ids->shape[0];
    if (!has_shape(*out, {n, c.dim}))
      return invalid("embed", "the output tensor has shape " + shape_string(*out) + ", expected [" +
                                  std::to_string(n) + ", " + std::to_string(c.dim) + "]");
    std::vector<int64_t> rows(n);
    const int64_t* id_base = element_base<const int64_t>(*ids);
    for_each_offset(*ids, [&](int64_t i, int64_t offset) { rows[i] = id_base[offset]; });
    for (int64_t i = 0; i < n; ++i)
      if (rows[i] < 0 || rows[i] >= c.vocab_size)
        return invalid("embed", "token id " + std::to_string(rows[i]) + " at " + std::to_string(i) +
                                    " is outside the vocabulary [0, " +
                                    std::to_string(c.vocab_size) + ")");
    float* out_base = element_base<float>(*out);
    const float* table = impl.model.token_embedding;
    for_each_offset(*out, [&](int64_t i, int64_t offset) {
      out_base[offset] = table[rows[i / c.dim] * c.dim + i % c.dim];
    });
    return nullptr;
  });
}

// The problem with a prefix output tensor, or "" ([n_layers, 2, n_kv_heads, n, head_dim]).
std::string prefix_shape_problem(const ModelConfig& c, const DLTensor* out) {
  const std::string problem = tensor_problem(out, kFloat32, 5);
  if (!problem.empty()) return "the output tensor " + problem;
  const int64_t n = out->shape[3];
  if (!has_shape(*out, {c.n_layers, 2, c.n_kv_heads, n, c.head_dim}) || n < 1 ||
      n > c.max_positions)
    return "the output tensor has shape " + shape_string(*out) + ", expected [" +
           std::to_string(c.n_layers) + ", 2, " + std::to_string(c.n_kv_heads) + ", n, " +
           std::to_string(c.head_dim) + "] with 1 <= n <= " + std::to_string(c.max_positions);
  return "";
}

// Runs `tokens` (out's length n of them) through the frozen model from position 0 and
// writes the cache's keys and values into `out`.
void write_prefix(const Model& model, const std::vector<int32_t>& tokens, DLTensor* out) {
  const ModelConfig& c = model.config;
  const int64_t n = out->shape[3];
  KVCache cache = make_kv_cache(model, (int)n);
  extend(model, cache, tokens);
  float* base = element_base<float>(*out);
  const int64_t hd = c.head_dim, per_head = n * hd, per_kv = c.n_kv_heads * per_head;
  for_each_offset(*out, [&](int64_t i, int64_t offset) {
    const int64_t layer = i / (2 * per_kv), kv = (i / per_kv) % 2,
                  head = (i / per_head) % c.n_kv_heads;
    const int64_t j = (i / hd) % n, d = i % hd;
    const auto& source = kv == 0 ? cache.keys[layer] : cache.values[layer];
    base[offset] = source(head, j, d);
  });
}

ph_status* prefix_from_text(const ph_host* host, const char* text, DLTensor* out) {
  return serve("prefix_from_text", host, true, [&](const ModelHost::Impl& impl) -> ph_status* {
    if (!text) return invalid("prefix_from_text", "text is NULL");
    const std::string problem = prefix_shape_problem(impl.model.config, out);
    if (!problem.empty()) return invalid("prefix_from_text", problem);
    const int64_t n = out->shape[3];
    const std::vector<int32_t> ids = impl.tokenizer->encode(text);
    if (ids.empty()) return invalid("prefix_from_text", "the text has no tokens");
    std::vector<int32_t> tokens(n);  // the text's ids tiled or cut to n
    for (int64_t j = 0; j < n; ++j) tokens[j] = ids[j % ids.size()];
    write_prefix(impl.model, tokens, out);
    return nullptr;
  });
}

ph_status* prefix_from_ids(const ph_host* host, const DLTensor* ids, DLTensor* out) {
  return serve("prefix_from_ids", host, false, [&](const ModelHost::Impl& impl) -> ph_status* {
    const ModelConfig& c = impl.model.config;
    std::string problem = prefix_shape_problem(c, out);
    if (!problem.empty()) return invalid("prefix_from_ids", problem);
    problem = tensor_problem(ids, kInt64, 1);
    if (!problem.empty()) return invalid("prefix_from_ids", "the ids tensor " + problem);
    const int64_t n = out->shape[3];
    if (ids->shape[0] != n)
      return invalid("prefix_from_ids", "the ids tensor has " + std::to_string(ids->shape[0]) +
                                            " ids, the output tensor " + std::to_string(n) +
                                            " positions");
    std::vector<int32_t> tokens(n);
    const int64_t* id_base = element_base<const int64_t>(*ids);
    bool in_vocab = true;
    for_each_offset(*ids, [&](int64_t i, int64_t offset) {
      const int64_t id = id_base[offset];
      in_vocab = in_vocab && id >= 0 && id < c.vocab_size;
      tokens[i] = (int32_t)id;
    });
    if (!in_vocab)
      return invalid("prefix_from_ids", "a token id is outside the vocabulary [0, " +
                                            std::to_string(c.vocab_size) + ")");
    write_prefix(impl.model, tokens, out);
    return nullptr;
  });
}

// The 1.1 facts: the task type and what follows from it and from the model's stacks.
void fill_task_facts(ph_model_info& info, const ModelConfig& c, TaskType task) {
  info.reserved_1_1 = 0;
  info.task_type = to_abi_task_type(task);
  info.num_transformer_submodules = task == TaskType::kSeq2SeqLm ? 2 : 1;  // PEFT's rule
  info.n_encoder_layers = c.stacks == Stacks::kDecoder ? 0 : c.n_layers;
  info.n_decoder_layers = c.stacks == Stacks::kDecoder          ? c.n_layers
                          : c.stacks == Stacks::kEncoderDecoder ? c.n_decoder_layers
                                                                : 0;
  info.num_labels = task == TaskType::kSeqCls ? c.num_labels() : 0;
}

}  // namespace

ModelHost::ModelHost(const Model& model, const Tokenizer* tokenizer, std::optional<TaskType> task)
    : impl_(std::make_unique<Impl>(model, tokenizer, task.value_or(model.config.task))) {
  const ModelConfig& c = model.config;
  Impl& m = *impl_;
  m.arch = arch_name(c.arch);
  m.info.struct_size = sizeof(ph_model_info);
  m.info.arch = m.arch.c_str();
  m.info.n_layers = c.n_layers;
  m.info.dim = c.dim;
  m.info.n_heads = c.n_heads;
  m.info.n_kv_heads = c.n_kv_heads;
  m.info.head_dim = c.head_dim;
  m.info.vocab_size = c.vocab_size;
  m.info.max_positions = c.max_positions;
  // The config's ids when it has them, else the tokenizer's.
  m.info.bos_id = c.bos_id >= 0 ? c.bos_id : tokenizer ? tokenizer->bos_id() : -1;
  m.info.eos_id = c.eos_id >= 0 ? c.eos_id : tokenizer ? tokenizer->eos_id() : -1;
  fill_task_facts(m.info, c, m.task);

  m.service = {sizeof(ph_host_model), &tokenize, &embed, &prefix_from_text, &prefix_from_ids};
  // The base host's status and log functions, with this model's services.
  m.table = *base_host();
  m.table.host_data = &m;
  m.table.get_service = &model_get_service;
}

ModelHost::~ModelHost() = default;

const ph_host* ModelHost::table() const {
  return &impl_->table;
}
const ph_model_info& ModelHost::info() const {
  return impl_->info;
}
const Model& ModelHost::model() const {
  return impl_->model;
}
TaskType ModelHost::task() const {
  return impl_->task;
}

}  // namespace ph::host
