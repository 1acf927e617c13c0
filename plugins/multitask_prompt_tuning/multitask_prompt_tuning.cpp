// Multitask prompt tuning (Wang et al. 2023, MPT), with Hugging Face PEFT's options and
// layout (peft-spec §2.4): a shared prompt embedding [T, dim] multiplied element-wise by a
// rank-r task matrix cols[t] @ rows[t] ([T, r] @ [r, dim]) for each example's task t.
//
// T = num_virtual_tokens * num_transformer_submodules (PEFT's total_virtual_tokens): for
// SEQ_2_SEQ_LM, 2n rows, the first n before the encoder's input and the second n before
// the decoder's (unscored), as PEFT feeds them.
//
// Parameters: embedding.weight [T, dim], prefix_task_cols [tasks, T, r],
// prefix_task_rows [tasks, r, dim]. Export: prompt_embeddings (the raw shared embedding,
// not multiplied), prefix_task_cols, prefix_task_rows.
// Initialisation: the embedding RANDOM (N(0, 1)) or TEXT (as prompt tuning), the task
// tables N(0, 0.02); or from a source adapter (prompt_tuning_init_state_dict_path, read
// through ph.host.tensor-files/1): AVERAGE_SOURCE_TASKS (the source's embedding and the
// mean of its task tables), EXACT_SOURCE_TASK (the source's embedding and the tables of
// its task prompt_tuning_init_task), ONLY_SOURCE_SHARED (only the source's embedding).
// The source is read once at creation; loading a saved target never needs it, so the
// exported adapter_config.json names none (init RANDOM, path null), which PEFT can load
// without the source too.
#include <prompthost_sdk/sdk.hpp>

#include <set>
#include <string>
#include <vector>

namespace {

using ph::sdk::ConfigError;
using ph::sdk::Error;

const char* const kInits[] = {
    "RANDOM", "TEXT", "AVERAGE_SOURCE_TASKS", "EXACT_SOURCE_TASK", "ONLY_SOURCE_SHARED", nullptr};

const ph_option kOptions[] = {
    ph::sdk::int_option("num_virtual_tokens", "20", 1, 4096,
                        "virtual tokens prepended to the input"),
    ph::sdk::int_option("num_tasks", "1", 1, 65536,
                        "tasks: rows of the task tables; data gives each example's task"),
    ph::sdk::int_option("num_ranks", "1", 1, 4096, "rank r of each task's multiplier"),
    ph::sdk::choice_option("prompt_tuning_init", "\"RANDOM\"", kInits,
                           "initialisation: RANDOM N(0,1), TEXT (prompt_tuning_init_text), or "
                           "from a source adapter: AVERAGE_SOURCE_TASKS, EXACT_SOURCE_TASK, "
                           "ONLY_SOURCE_SHARED"),
    ph::sdk::string_option("prompt_tuning_init_text", "null",
                           "text whose token embeddings initialise the shared prompt (TEXT)"),
    ph::sdk::string_option("prompt_tuning_init_state_dict_path", "null",
                           "the source adapter (folder or .safetensors) of the source inits"),
    ph::sdk::int_option("prompt_tuning_init_task", "0", 0, 65535,
                        "the source task whose tables EXACT_SOURCE_TASK copies"),
    ph::sdk::string_option("tokenizer_name_or_path", "null",
                           "for PEFT's adapter_config.json, which needs it with TEXT; null: "
                           "the base model (--model); PromptHost uses the model's tokenizer"),
};

// PEFT's prompt learning supports every task type PromptHost has.
const ph_task_type kTaskTypes[] = {PH_TASK_CAUSAL_LM, PH_TASK_SEQ_2_SEQ_LM, PH_TASK_SEQ_CLS};

const ph_method_descriptor kDescriptor = {
    sizeof(ph_method_descriptor),
    "multitask_prompt_tuning",
    "MULTITASK_PROMPT_TUNING",
    "1.0.0",
    "Multitask prompt tuning (Wang et al. 2023): a shared prompt multiplied element-wise by a "
    "low-rank matrix of each example's task; a target adapter can start from a source "
    "adapter's shared prompt and task tables.",
    kOptions,
    sizeof(kOptions) / sizeof(kOptions[0]),
    kTaskTypes,
    sizeof(kTaskTypes) / sizeof(kTaskTypes[0])};

std::string shape_of(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

class MultitaskPromptTuning : public ph::sdk::Method {
 public:
  explicit MultitaskPromptTuning(const ph::sdk::MethodContext& ctx)
      : Method(ctx), config_(ctx.config), model_(ctx.model), dim_(ctx.model.dim) {
    tokens_ = config_.at("num_virtual_tokens").get<int>();
    n_ = tokens_ * model_.num_transformer_submodules;
    tasks_ = config_.at("num_tasks").get<int>();
    ranks_ = config_.at("num_ranks").get<int>();
    init_ = config_.at("prompt_tuning_init").get<std::string>();
    const bool from_source = from_source_init();
    const auto& path = config_.at("prompt_tuning_init_state_dict_path");
    if (from_source && (!path.is_string() || path.get<std::string>().empty()))
      throw ConfigError("prompt_tuning_init_state_dict_path",
                        init_ +
                            " initialisation needs the source adapter (a folder or a "
                            ".safetensors file)");
    if ((init_ == "AVERAGE_SOURCE_TASKS" || init_ == "EXACT_SOURCE_TASK") && tasks_ != 1)
      throw ConfigError("num_tasks", init_ + " initialisation makes one task, num_tasks is " +
                                         std::to_string(tasks_) + " (it must be 1)");
    const auto& text = config_.at("prompt_tuning_init_text");
    if (init_ == "TEXT" && (!text.is_string() || text.get<std::string>().empty()))
      throw ConfigError("prompt_tuning_init_text", "TEXT initialisation needs a text");

    const size_t T = n_, D = dim_, S = tasks_, R = ranks_;
    embedding_ = &add_parameter("embedding.weight", {T, D});
    cols_ = &add_parameter("prefix_task_cols", {S, T, R});
    rows_ = &add_parameter("prefix_task_rows", {S, R, D});

    // PEFT's defaults first (what the source inits do not overwrite keeps them).
    const ph_host_random& random = ctx.random();
    ph::sdk::check(random.fill_normal(ctx.host, ctx.seed, 1, 0.0f, 0.02f, cols_->value.dl()));
    ph::sdk::check(random.fill_normal(ctx.host, ctx.seed, 2, 0.0f, 0.02f, rows_->value.dl()));
    if (init_ == "TEXT") {
      if (!ctx.for_import) init_from_text(ctx, text.get<std::string>());
    } else {
      ph::sdk::check(random.fill_normal(ctx.host, ctx.seed, 0, 0.0f, 1.0f, embedding_->value.dl()));
    }
    // The import overwrites every parameter: a saved target never needs its source.
    if (from_source && !ctx.for_import) init_from_source(ctx, path.get<std::string>());
  }

  // One set per example; for SEQ_2_SEQ_LM the second half goes before the decoder.
  ph_injection_spec injection() const override {
    ph_injection_spec spec = ph::sdk::virtual_tokens_spec(n_, /*per_example=*/true);
    spec.n_input_virtual = tokens_;
    spec.n_decoder_virtual = n_ - tokens_;
    return spec;
  }

  void forward(const ph::sdk::Batch& batch, bool, DLTensor* virtual_tokens, DLTensor*) override {
    const std::vector<int64_t> task = task_ids(batch);
    if (!virtual_tokens) throw Error(PH_ERR_INVALID_ARGUMENT, "forward: no virtual_tokens output");
    check_injection_shape(*virtual_tokens, batch.size, "virtual_tokens");
    auto out = ph::sdk::view<float, 3>(*virtual_tokens);  // [B, T, dim]
    const float* e = embedding_->value.data();
    std::vector<float> w((size_t)n_ * dim_);
    for (int64_t t : distinct(task)) {
      multiplier(t, w.data());
      for (int64_t b = 0; b < batch.size; ++b) {
        if (task[b] != t) continue;
        for (int i = 0; i < n_; ++i)
          for (int d = 0; d < dim_; ++d) {
            const size_t k = (size_t)i * dim_ + d;
            out(b, i, d) = e[k] * w[k];
          }
      }
    }
  }

  void backward(const ph::sdk::Batch& batch, const DLTensor* grad_virtual,
                const DLTensor*) override {
    const std::vector<int64_t> task = task_ids(batch);
    if (!grad_virtual) throw Error(PH_ERR_INVALID_ARGUMENT, "backward: no grad_virtual");
    check_injection_shape(*grad_virtual, batch.size, "grad_virtual");
    const auto g = ph::sdk::view<const float, 3>(*grad_virtual);
    const float* e = embedding_->value.data();
    const float* cols = cols_->value.data();
    const float* rows = rows_->value.data();
    float* ge = embedding_->grad.data();
    float* gc = cols_->grad.data();
    float* gr = rows_->grad.data();
    const size_t TD = (size_t)n_ * dim_;
    std::vector<float> w(TD), gsum(TD), gw(TD);
    for (int64_t t : distinct(task)) {
      // out_b = E ⊙ W_t for every example b of task t: the examples' gradients add up.
      std::fill(gsum.begin(), gsum.end(), 0.0f);
      for (int64_t b = 0; b < batch.size; ++b) {
        if (task[b] != t) continue;
        for (int i = 0; i < n_; ++i)
          for (int d = 0; d < dim_; ++d) gsum[(size_t)i * dim_ + d] += g(b, i, d);
      }
      multiplier(t, w.data());
      for (size_t k = 0; k < TD; ++k) {
        ge[k] += gsum[k] * w[k];
        gw[k] = gsum[k] * e[k];
      }
      // W_t = cols[t] @ rows[t]: d cols[t] = dW rows[t]ᵀ, d rows[t] = cols[t]ᵀ dW.
      const float* c = cols + (size_t)t * n_ * ranks_;
      const float* r = rows + (size_t)t * ranks_ * dim_;
      float* gct = gc + (size_t)t * n_ * ranks_;
      float* grt = gr + (size_t)t * ranks_ * dim_;
      for (int i = 0; i < n_; ++i)
        for (int k = 0; k < ranks_; ++k) {
          const float* rk = r + (size_t)k * dim_;
          const float* gwi = gw.data() + (size_t)i * dim_;
          float acc = 0.0f;
          for (int d = 0; d < dim_; ++d) acc += gwi[d] * rk[d];
          gct[(size_t)i * ranks_ + k] += acc;
          const float cik = c[(size_t)i * ranks_ + k];
          float* grk = grt + (size_t)k * dim_;
          for (int d = 0; d < dim_; ++d) grk[d] += cik * gwi[d];
        }
    }
  }

  void export_adapter(const ph_tensor_sink& sink) const override {
    put_tensor(sink, "prompt_embeddings", embedding_->value.dl());
    put_tensor(sink, "prefix_task_cols", cols_->value.dl());
    put_tensor(sink, "prefix_task_rows", rows_->value.dl());
    // PEFT runs a source initialisation again at every load, inference included: it reads
    // prompt_tuning_init_state_dict_path (failing on a folder, or once the file has moved)
    // and raises if that is null. The exported tensors hold every value the source gave,
    // so PEFT's config names no source: RANDOM, whose values the load overwrites, and no
    // path. The options as given stay in prompthost_adapter.json.
    nlohmann::json fields = ph::sdk::peft_model_fields(model_);
    fields.update({{"num_virtual_tokens", tokens_},
                   {"num_tasks", tasks_},
                   {"num_ranks", ranks_},
                   {"prompt_tuning_init", from_source_init() ? "RANDOM" : init_},
                   {"prompt_tuning_init_text", config_.at("prompt_tuning_init_text")},
                   {"prompt_tuning_init_state_dict_path", nullptr},
                   {"prompt_tuning_init_task", config_.at("prompt_tuning_init_task")},
                   {"tokenizer_name_or_path", config_.at("tokenizer_name_or_path")},
                   {"tokenizer_kwargs", nullptr}});
    put_config(sink, fields);
  }

  void import_adapter(const ph_tensor_source& source) override {
    // Every shape is checked before any parameter changes.
    const DLTensor& e = get_tensor(source, "prompt_embeddings");
    const DLTensor& c = get_tensor(source, "prefix_task_cols");
    const DLTensor& r = get_tensor(source, "prefix_task_rows");
    expect_shape(e, "prompt_embeddings", {n_, dim_},
                 "num_virtual_tokens * num_transformer_submodules, the model's hidden size");
    expect_shape(c, "prefix_task_cols", {tasks_, n_, ranks_},
                 "num_tasks, num_virtual_tokens * num_transformer_submodules, num_ranks");
    expect_shape(r, "prefix_task_rows", {tasks_, ranks_, dim_},
                 "num_tasks, num_ranks, the model's hidden size");
    auto ev = embedding_->value.values();
    auto cv = cols_->value.values();
    auto rv = rows_->value.values();
    xt::noalias(ev) = ph::sdk::view<const float, 2>(e);
    xt::noalias(cv) = ph::sdk::view<const float, 3>(c);
    xt::noalias(rv) = ph::sdk::view<const float, 3>(r);
  }

 private:
  bool from_source_init() const {
    return init_ == "AVERAGE_SOURCE_TASKS" || init_ == "EXACT_SOURCE_TASK" ||
           init_ == "ONLY_SOURCE_SHARED";
  }

  // Each example's task: batch.task_ids, or task 0 for all when there are none.
  std::vector<int64_t> task_ids(const ph::sdk::Batch& batch) const {
    if (batch.size < 0) throw Error(PH_ERR_INVALID_ARGUMENT, "negative batch size");
    std::vector<int64_t> task((size_t)batch.size, 0);
    if (!batch.task_ids) return task;
    for (int64_t b = 0; b < batch.size; ++b) {
      const int64_t t = batch.task_ids[b];
      if (t < 0 || t >= tasks_)
        throw Error(PH_ERR_INVALID_ARGUMENT,
                    "task id " + std::to_string(t) + " of example " + std::to_string(b) +
                        " is out of range: the adapter has num_tasks = " + std::to_string(tasks_));
      task[b] = t;
    }
    return task;
  }

  static std::set<int64_t> distinct(const std::vector<int64_t>& task) {
    return std::set<int64_t>(task.begin(), task.end());
  }

  void check_injection_shape(const DLTensor& t, int64_t batch_size, const char* what) const {
    if (t.ndim != 3 || t.shape[0] != batch_size || t.shape[1] != n_ || t.shape[2] != dim_)
      throw Error(PH_ERR_INVALID_ARGUMENT,
                  std::string(what) + " is " + ph::sdk::shape_string(t) + ", expected " +
                      shape_of({batch_size, n_, dim_}) +
                      " (batch, num_virtual_tokens * num_transformer_submodules, dim)");
  }

  // w [T, dim] = cols[t] @ rows[t].
  void multiplier(int64_t t, float* w) const {
    const float* c = cols_->value.data() + (size_t)t * n_ * ranks_;
    const float* r = rows_->value.data() + (size_t)t * ranks_ * dim_;
    for (int i = 0; i < n_; ++i) {
      float* wi = w + (size_t)i * dim_;
      std::fill(wi, wi + dim_, 0.0f);
      for (int k = 0; k < ranks_; ++k) {
        const float cik = c[(size_t)i * ranks_ + k];
        const float* rk = r + (size_t)k * dim_;
        for (int d = 0; d < dim_; ++d) wi[d] += cik * rk[d];
      }
    }
  }

  static void expect_shape(const DLTensor& t, const char* name, std::vector<int64_t> want,
                           const char* meaning) {
    bool ok = t.ndim == (int)want.size();
    for (int i = 0; ok && i < t.ndim; ++i) ok = t.shape[i] == want[i];
    if (!ok)
      throw Error(PH_ERR_DATA_LOSS, std::string(name) + " is " + ph::sdk::shape_string(t) +
                                        ", expected " + shape_of(want) + " (" + meaning + ")");
  }

  void init_from_text(const ph::sdk::MethodContext& ctx, const std::string& text) {
    const std::vector<int64_t> ids = ctx.tokenize(text);
    if (ids.empty()) throw ConfigError("prompt_tuning_init_text", "the text has no tokens");
    ctx.embed_tiled(ids, embedding_->value.dl());  // repeated, then cut to n (PEFT)
  }

  // A tensor of the source adapter, read through the host (errors name file and tensor).
  static ph::sdk::Tensor read_source(const ph::sdk::MethodContext& ctx, const std::string& path,
                                     const char* name) {
    const auto& files = ctx.service<ph_host_tensor_files>(PH_SERVICE_TENSOR_FILES);
    int32_t ndim = 0;
    int64_t shape[8] = {0};
    ph::sdk::check(files.tensor_shape(ctx.host, path.c_str(), name, &ndim, shape));
    std::vector<size_t> sizes(shape, shape + ndim);
    ph::sdk::Tensor t(sizes);
    ph::sdk::check(files.read_tensor(ctx.host, path.c_str(), name, t.dl()));
    return t;
  }

  static void source_shape(const ph::sdk::Tensor& t, const std::string& path, const char* name,
                           const std::vector<int64_t>& want, const char* meaning) {
    const auto have = t.shape_sizes();
    std::vector<int64_t> got(have.begin(), have.end());
    bool ok = got.size() == want.size();
    for (size_t i = 0; ok && i < got.size(); ++i) ok = want[i] < 0 || got[i] == want[i];
    if (!ok) {
      std::string w = "[";
      for (size_t i = 0; i < want.size(); ++i)
        w += (i ? ", " : "") + (want[i] < 0 ? std::string("*") : std::to_string(want[i]));
      throw ConfigError("prompt_tuning_init_state_dict_path",
                        "the source adapter '" + path + "' has " + name + " " + shape_of(got) +
                            ", expected " + w + "] (" + meaning + ")");
    }
  }

  void init_from_source(const ph::sdk::MethodContext& ctx, const std::string& path) {
    const ph::sdk::Tensor e = read_source(ctx, path, "prompt_embeddings");
    source_shape(e, path, "prompt_embeddings", {n_, dim_},
                 "num_virtual_tokens * num_transformer_submodules, the model's hidden size");
    if (init_ == "ONLY_SOURCE_SHARED") {
      auto ev = embedding_->value.values();
      xt::noalias(ev) = e.values();
      return;
    }
    const ph::sdk::Tensor c = read_source(ctx, path, "prefix_task_cols");
    const ph::sdk::Tensor r = read_source(ctx, path, "prefix_task_rows");
    source_shape(c, path, "prefix_task_cols", {-1, n_, ranks_},
                 "source tasks, num_virtual_tokens * num_transformer_submodules, num_ranks");
    const int64_t src_tasks = (int64_t)c.shape_sizes()[0];
    source_shape(r, path, "prefix_task_rows", {src_tasks, ranks_, dim_},
                 "source tasks, num_ranks, the model's hidden size");
    if (src_tasks < 1)
      throw ConfigError("prompt_tuning_init_state_dict_path",
                        "the source adapter '" + path + "' has no tasks");
    const size_t TR = (size_t)n_ * ranks_, RD = (size_t)ranks_ * dim_;
    float* cols = cols_->value.data();
    float* rows = rows_->value.data();
    if (init_ == "EXACT_SOURCE_TASK") {
      const int64_t task = config_.at("prompt_tuning_init_task").get<int64_t>();
      if (task >= src_tasks)
        throw ConfigError("prompt_tuning_init_task", "task " + std::to_string(task) +
                                                         " is out of range: the source adapter '" +
                                                         path + "' has " +
                                                         std::to_string(src_tasks) + " tasks");
      std::copy(c.data() + task * TR, c.data() + (task + 1) * TR, cols);
      std::copy(r.data() + task * RD, r.data() + (task + 1) * RD, rows);
    } else {  // AVERAGE_SOURCE_TASKS: the mean over the source's tasks
      auto mean = [&](const float* src, size_t per_task, float* out) {
        for (size_t k = 0; k < per_task; ++k) {
          double sum = 0.0;
          for (int64_t s = 0; s < src_tasks; ++s) sum += src[s * per_task + k];
          out[k] = (float)(sum / (double)src_tasks);
        }
      };
      mean(c.data(), TR, cols);
      mean(r.data(), RD, rows);
    }
    auto ev = embedding_->value.values();
    xt::noalias(ev) = e.values();
  }

  nlohmann::json config_;
  ph_model_info model_;
  int dim_ = 0;
  int tokens_ = 0;  // num_virtual_tokens
  int n_ = 0;       // rows of the tables: tokens_ * num_transformer_submodules
  int tasks_ = 1;
  int ranks_ = 1;
  std::string init_;
  Parameter* embedding_ = nullptr;
  Parameter* cols_ = nullptr;
  Parameter* rows_ = nullptr;
};

}  // namespace

PH_EXPORT_METHOD(MultitaskPromptTuning, kDescriptor)
