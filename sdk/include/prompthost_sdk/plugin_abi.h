/* PromptHost plugin ABI, version 1.2.
 *
 * The whole contract between the PromptHost host and a soft-prompt method plugin.
 * C11 and C++ compatible; no C++ type, exception or allocator crosses it.
 *
 * Rules that hold for every table below:
 *  - Versioning. A plugin exports exactly one symbol, ph_plugin_entry_v1: the ABI
 *    major is in its name, so a host of another major does not find it. Every table
 *    starts with `struct_size` (sizeof the table the producer was compiled with);
 *    tables only grow at their end, and a reader checks PH_HAS(table, type, field)
 *    before touching a field added after 1.0. Each field says "since 1.N".
 *  - Optional features are asked for by string id with a revision ("ph.host.model/1")
 *    and answered with NULL when absent.
 *  - Errors. A fallible call returns ph_status*: NULL is success. A status is made only
 *    by the host (ph_host.status_new) and released by whoever receives it; it lives in
 *    the host, so it outlives the plugin library. On error a call leaves its outputs
 *    untouched and leaks nothing. No exception may leave a plugin function.
 *  - Tensors are DLPack DLTensor: device kDLCPU, float32 ({kDLFloat, 32, 1}) unless a
 *    field says int64. `strides` may be NULL (compact row-major); `byte_offset` is
 *    honoured. A `const DLTensor*` argument is borrowed for the call and read-only; a
 *    `DLTensor*` output is allocated by the caller and filled in place.
 *  - Strings are UTF-8, NUL-terminated, borrowed for the call unless a field says
 *    otherwise.
 *  - Threads. [main-thread]: never concurrent with any other call into the plugin.
 *    [instance]: the host never calls one method instance from two threads at once;
 *    different instances may run concurrently (so: no mutable globals in a plugin).
 *    [thread-safe]: any thread, any time.
 */
#ifndef PROMPTHOST_PLUGIN_ABI_H
#define PROMPTHOST_PLUGIN_ABI_H

#include <dlpack/dlpack.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PH_ABI_MAJOR 1
#define PH_ABI_MINOR 2

/* Does table `p` (of type T, as its producer compiled it) contain field f? */
#define PH_HAS(p, T, f) (offsetof(T, f) + sizeof(((T*)0)->f) <= (p)->struct_size)

#if defined(_WIN32)
#define PH_EXPORT __declspec(dllexport)
#else
#define PH_EXPORT __attribute__((visibility("default")))
#endif

/* ------------------------------------------------------------------ status */

typedef struct ph_status ph_status; /* opaque, owned by the host; NULL = success */

typedef int32_t ph_code; /* enums cross the ABI as fixed-width integers */
enum {
  PH_OK = 0,
  PH_ERR_INVALID_ARGUMENT = 1, /* a tensor of the wrong shape, an id out of range */
  PH_ERR_INVALID_CONFIG = 2,   /* an option value the method cannot take */
  PH_ERR_UNSUPPORTED = 3,      /* a version or feature the other side lacks */
  PH_ERR_OUT_OF_MEMORY = 4,
  PH_ERR_DATA_LOSS = 5, /* a corrupt or mismatched saved state */
  PH_ERR_IO = 6,
  PH_ERR_INTERNAL = 7
};

typedef int32_t ph_log_level;
enum { PH_LOG_DEBUG = 0, PH_LOG_INFO = 1, PH_LOG_WARNING = 2, PH_LOG_ERROR = 3 };

/* What the frozen model is used for, as PEFT names it (adapter_config.json's task_type).
 * A later minor may add codes: a reader treats a code it does not know as unsupported.
 * Since 1.1. */
typedef int32_t ph_task_type;
enum {
  PH_TASK_CAUSAL_LM = 0,    /* "CAUSAL_LM": next-token loss over the one input (1.0's only task) */
  PH_TASK_SEQ_2_SEQ_LM = 1, /* "SEQ_2_SEQ_LM": encoder input, loss over the decoder's labels */
  PH_TASK_SEQ_CLS = 2       /* "SEQ_CLS": cross-entropy over num_labels classes */
};

/* ------------------------------------------------------------------ the frozen model */

/* Facts of the frozen model a method is created for. Owned by the host; valid for the
 * life of every instance created with it; constant, so readable from any thread. Since
 * 1.0; the fields after eos_id since 1.1 (check PH_HAS: a 1.0 host's table ends at
 * eos_id). */
typedef struct ph_model_info {
  uint32_t struct_size;
  const char* arch; /* the family: "llama", "gpt2", "t5", "bert", "roberta", "bloom", ... */
  /* The layers a key/value prefix covers (PEFT's num_layers): the decoder's for a decoder,
   * the encoder's for an encoder or an encoder-decoder (T5's config num_layers). */
  int32_t n_layers;
  int32_t dim; /* hidden size: the width of a virtual token */
  int32_t n_heads;
  int32_t n_kv_heads;
  int32_t head_dim;
  int32_t vocab_size;
  int32_t max_positions;
  int32_t bos_id; /* -1 when the model has none */
  int32_t eos_id;
  /* Since 1.1: always 0. It fills what was tail padding in 1.0 (sizeof 56 on LP64), so
   * that PH_HAS on a 1.0 table never reports a 1.1 field present. */
  int32_t reserved_1_1;
  /* Since 1.1: the task type this instance is trained for: the model's own (config.json's
   * architectures) unless the user chose another (`--task-type`). A table without it
   * (a 1.0 host) means PH_TASK_CAUSAL_LM. */
  ph_task_type task_type;
  /* Since 1.1: PEFT's num_transformer_submodules: 2 for PH_TASK_SEQ_2_SEQ_LM (encoder and
   * decoder), else 1. PEFT's prompt tables hold num_virtual_tokens times this many rows. */
  int32_t num_transformer_submodules;
  /* Since 1.1: the layers of the encoder stack (T5's encoder, BERT), 0 for a decoder. */
  int32_t n_encoder_layers;
  /* Since 1.1: the layers of the decoder stack (a decoder's n_layers, T5's
   * num_decoder_layers), 0 for an encoder. */
  int32_t n_decoder_layers;
  /* Since 1.1: PH_TASK_SEQ_CLS: the number of classes; 0 for other task types. */
  int32_t num_labels;
} ph_model_info;

/* ------------------------------------------------------------------ host services */

typedef struct ph_host ph_host;

/* The host as a plugin sees it: handed to ph_plugin_entry.init, valid until deinit
 * returns. Every function is [thread-safe]. Since 1.0. */
struct ph_host {
  uint32_t struct_size;
  uint16_t abi_major;
  uint16_t abi_minor;
  const char* name;    /* "prompthost" or the conformance runner's name */
  const char* version; /* the host's semantic version */
  void* host_data;     /* the host's; a plugin never touches it */

  /* A new status with a copy of `message`. Never returns NULL for code != PH_OK. */
  ph_status* (*status_new)(const ph_host* host, ph_code code, const char* message);
  /* Releases a status; accepts NULL. */
  void (*status_release)(const ph_host* host, ph_status* status);
  void (*log)(const ph_host* host, ph_log_level level, const char* message);
  /* A service table by id (see below), or NULL when the host has none of that id. The
   * table stays valid until deinit. */
  const void* (*get_service)(const ph_host* host, const char* id);
};

/* "ph.host.random/1": counter-based random numbers. The same (seed, stream) gives the
 * same numbers on every machine and in every host; plugins must use this rather than
 * time, std::random_device or <random> distributions. [thread-safe]. Since 1.0. */
#define PH_SERVICE_RANDOM "ph.host.random/1"
typedef struct ph_host_random {
  uint32_t struct_size;
  /* Fills every element of a float32 tensor with N(mean, std²) draws. */
  ph_status* (*fill_normal)(const ph_host* host, uint64_t seed, uint64_t stream, float mean,
                            float std, DLTensor* out);
  /* Fills every element of a float32 tensor with U[low, high) draws. */
  ph_status* (*fill_uniform)(const ph_host* host, uint64_t seed, uint64_t stream, float low,
                             float high, DLTensor* out);
  /* Fills an int64 tensor with integers uniform in [0, bound). */
  ph_status* (*fill_integers)(const ph_host* host, uint64_t seed, uint64_t stream, int64_t bound,
                              DLTensor* out);
} ph_host_random;

/* "ph.host.model/1": the frozen model, for initialisation from text or vocabulary and
 * for methods that run their own loop. Only available to instances (see create): it
 * serves the model the instance was created for. [thread-safe]. Since 1.0. */
#define PH_SERVICE_MODEL "ph.host.model/1"
typedef struct ph_host_model {
  uint32_t struct_size;
  /* Token ids of `text` (no BOS/EOS) into `ids` (int64 [capacity]); *count receives the
   * number of ids, which may exceed the capacity (then only `capacity` are written). */
  ph_status* (*tokenize)(const ph_host* host, const char* text, DLTensor* ids, int64_t* count);
  /* The frozen input embeddings of `ids` (int64 [n]) into `out` (float32 [n, dim]). */
  ph_status* (*embed)(const ph_host* host, const DLTensor* ids, DLTensor* out);
  /* The key/value prefix of a text run through the frozen model (positions 0..n-1),
   * into `out` (float32 [n_layers, 2, n_kv_heads, n, head_dim]) where n is out's length;
   * the text's token ids are tiled or cut to n. */
  ph_status* (*prefix_from_text)(const ph_host* host, const char* text, DLTensor* out);
  /* Since 1.2 (check PH_HAS): the key/value cache of exactly the token ids `ids` (int64
   * [n]) run through the frozen model at positions 0..n-1, into `out` (float32 [n_layers,
   * 2, n_kv_heads, n, head_dim]; keys as the cache holds them, rotated where the model is
   * rotary). Nothing is added (no BOS) and nothing tiled: PEFT's Cartridge initialisation
   * from a text, whose tokens the plugin chose. */
  ph_status* (*prefix_from_ids)(const ph_host* host, const DLTensor* ids, DLTensor* out);
} ph_host_model;

/* "ph.host.tensor-files/1": tensors of saved adapters and safetensors files, so that a
 * plugin can initialise from another adapter (e.g. the source adapter of multitask
 * prompt tuning) without parsing files itself. `path` is a .safetensors file or an
 * adapter folder (then its adapter_model.safetensors). Stored F32, F16, BF16 and F64
 * tensors are read as float32. Errors (PH_ERR_IO for a missing or unreadable file,
 * PH_ERR_DATA_LOSS for a corrupt one, PH_ERR_INVALID_ARGUMENT for an absent tensor or a
 * wrong output) name the file and the tensor. [thread-safe]. Since 1.0. */
#define PH_SERVICE_TENSOR_FILES "ph.host.tensor-files/1"
typedef struct ph_host_tensor_files {
  uint32_t struct_size;
  /* The rank (*ndim, at most 8) and sizes (shape[0 .. *ndim-1]; shape has room for 8)
   * of tensor `name` in `path`. */
  ph_status* (*tensor_shape)(const ph_host* host, const char* path, const char* name, int32_t* ndim,
                             int64_t* shape);
  /* Reads tensor `name` of `path` into `out` (float32, the tensor's exact shape). */
  ph_status* (*read_tensor)(const ph_host* host, const char* path, const char* name, DLTensor* out);
} ph_host_tensor_files;

/* ------------------------------------------------------------------ method description */

typedef int32_t ph_option_type;
enum {
  PH_OPTION_INT = 0,
  PH_OPTION_FLOAT = 1,
  PH_OPTION_BOOL = 2,
  PH_OPTION_STRING = 3,
  PH_OPTION_CHOICE = 4, /* a string from `choices` */
  /* Since 1.2: a JSON array of integers (PEFT's cpt_token_ids); default_value is JSON
   * text ("[]"), min_value/max_value bound every element. `--set name=[1,2,3]`. */
  PH_OPTION_INT_LIST = 5
};

/* One option a method takes. The host turns options into `--set name=value` flags and
 * adapter_config.json fields, validates values against the declaration, and hands the
 * method a JSON object of every option (defaults filled in). Since 1.0. */
typedef struct ph_option {
  uint32_t struct_size;
  const char* name;           /* the adapter_config.json key, e.g. "num_virtual_tokens" */
  ph_option_type type;
  const char* default_value;  /* as JSON text: "20", "true", "\"RANDOM\"", "null" */
  const char* help;           /* one line */
  const char* const* choices; /* PH_OPTION_CHOICE: NULL-terminated list; else NULL */
  double min_value;           /* PH_OPTION_INT/FLOAT: inclusive bounds */
  double max_value;
  int32_t nullable;           /* 1: JSON null is allowed (e.g. "encoder_hidden_size") */
} ph_option;

/* Static description of the method a plugin provides; owned by the plugin, valid while
 * the library is loaded. Since 1.0. */
typedef struct ph_method_descriptor {
  uint32_t struct_size;
  const char* name;        /* [a-z0-9_]+, used by --plugin NAME, e.g. "prefix_tuning" */
  const char* peft_type;   /* PEFT's peft_type, e.g. "PREFIX_TUNING" */
  const char* version;     /* the plugin's semantic version */
  const char* description; /* one paragraph */
  const ph_option* options;
  uint32_t n_options;
  /* Since 1.1: the task types the method supports (PH_TASK_*), n_task_types of them. The
   * host refuses any other task type before creating an instance, naming these. NULL / 0
   * (and a 1.0 descriptor): not declared; the host offers every task type. The array is
   * the plugin's, static and constant like the descriptor: read from any thread. */
  const ph_task_type* task_types;
  uint32_t n_task_types;
} ph_method_descriptor;

/* ------------------------------------------------------------------ what an instance injects */

/* The injection one instance produces, fixed at creation. Since 1.0; the split of the
 * virtual tokens between encoder and decoder since 1.1. */
typedef struct ph_injection_spec {
  uint32_t struct_size;
  int32_t n_virtual;   /* virtual tokens per set; 0: none */
  int32_t per_example; /* 1: one set per example ([batch, n_virtual, dim]); 0: shared ([1, ...]) */
  int32_t n_prefix;    /* key/value prefix length; 0: none */
  /* Where virtual tokens go, or NULL for "all prepended" (PEFT's behaviour). A template
   * is text with placeholders: "[P:k]" for the next k virtual tokens, "{input}" and
   * "{output}" for the example's fields ("{input}" is the text of {"text": ...} data);
   * anything else is literal text, tokenized by the host. Example:
   * "[P:3] {input} [P:3] {output}". Owned by the instance. */
  const char* template_text;
  /* Since 1.1: where the n_virtual rows go (PEFT's layout for num_transformer_submodules
   * = 2). Rows 0 .. n_input_virtual-1 go in the input (the encoder's for SEQ_2_SEQ_LM),
   * placed as template_text says; the next n_decoder_virtual rows are prepended to the
   * decoder's input, unscored (SEQ_2_SEQ_LM only); the rows after those are the method's
   * to keep (saved and exported, e.g. PEFT's unused second half of a T5 prompt table):
   * the host does not feed them and their gradient is 0. n_input_virtual =
   * n_decoder_virtual = 0 (or a 1.0 spec) means every row goes in the input. Part of the
   * spec: owned by the instance, read by the host right after creation. */
  int32_t n_input_virtual;
  int32_t n_decoder_virtual;
  /* Since 1.2: the gated adapter attention of LLaMA-Adapter (PEFT's ADAPTION_PROMPT):
   * adapter_len learned prompt rows in each of the top adapter_layers layers (model layers
   * n_layers - adapter_layers .. n_layers-1), each with one scalar gate. In an adapted
   * layer the attention output gains gate * softmax(q Kp^T / sqrt(head_dim)) Vp, where Kp
   * and Vp are the layer's own key and value projections of the prompt rows (no rotary, no
   * norm; GPT-2: c_attn with its bias, the branch added after c_proj; Llama: grouped like
   * the model's kv heads, through o_proj), a softmax of its own over the adapter rows,
   * unmasked, and a raw gate (no tanh). The method writes them through
   * ph_method.forward_injection. 0 / 0 (and a 1.0 or 1.1 spec): none. Causal decoders of
   * the llama and gpt2 families only; the host refuses others naming the family. */
  int32_t adapter_len;
  int32_t adapter_layers;
} ph_injection_spec;

/* Every tensor of one injection, for ph_method.forward_injection (outputs, allocated by
 * the host, filled by the method) and backward_injection (d loss / d each, read-only).
 * A field is NULL when the spec has no such part. Host-owned, valid for the call.
 * Since 1.2; a later minor adds injection kinds at its end (check PH_HAS). */
typedef struct ph_injection_tensors {
  uint32_t struct_size;
  DLTensor* virtual_tokens; /* float32 [sets, n_virtual, dim], as forward's */
  DLTensor* prefix;         /* float32 [n_layers, 2, n_kv_heads, n_prefix, head_dim] */
  /* float32 [adapter_layers, adapter_len, dim]: row block i is model layer
   * n_layers - adapter_layers + i (PEFT's adaption_prompt of that layer). */
  DLTensor* adapter_prompts;
  DLTensor* adapter_gates; /* float32 [adapter_layers]: PEFT's adaption_gate, one per layer */
} ph_injection_tensors;

/* The kind of a real token in ph_scored_sequence.kinds: PEFT's CPT type codes of one
 * example (its notebook's 4k+1 .. 4k+4 with k = 0). The host derives them from the data:
 * a prompt's text is PH_TOKEN_INPUT, the output scored PH_TOKEN_OUTPUT, literal template
 * text around them the templates, anything else (BOS, separators) PH_TOKEN_OTHER.
 * Since 1.2. */
enum {
  PH_TOKEN_OTHER = 0,
  PH_TOKEN_INPUT_TEMPLATE = 1,
  PH_TOKEN_INPUT = 2,
  PH_TOKEN_OUTPUT_TEMPLATE = 3,
  PH_TOKEN_OUTPUT = 4
};

/* One example's labels as the host will score them, for ph_method.score_labels. The
 * arrays are the host's, [length] each, valid for the call. Since 1.2. */
typedef struct ph_scored_sequence {
  uint32_t struct_size;
  int64_t length;        /* tokens as fed to the model: virtual slots included */
  const int64_t* slots;  /* k for virtual token k of the injection, -1 for a real token */
  const int64_t* tokens; /* the real token ids (0 at virtual slots) */
  const int64_t* kinds;  /* PH_TOKEN_* of each real token (PH_TOKEN_OTHER at virtual slots) */
  /* In/out. transformers' convention: labels[t] is predicted from position t-1; -100 is
   * not scored. On entry the host's (-100 at every virtual slot); the method may score
   * any position, virtual slots included (CPT scores its context's label tokens). */
  int64_t* labels;
  /* In/out: the weight of labels[t]'s cross-entropy, 1 on entry. The loss of a batch is
   * sum(weight * CE) over its scored labels divided by the number of scored labels (not
   * by the sum of weights: PEFT's CPT loss). */
  float* weights;
} ph_scored_sequence;

/* Training by context distillation (Cartridges): instead of the labels' cross-entropy,
 * the host runs the frozen model without the injection as the teacher on context ++ the
 * example, and trains the method's injection (the student sees the example alone) to
 * match the teacher's next-token distributions: per position p of the student,
 * -sum over the teacher's top_k tokens i of softmax(teacher / T)_i * log_softmax(student)_i
 * (not renormalised over the top k), the mean over a row's positions, then the mean over
 * the rows (PEFT's examples/cartridge_self_study). The teacher's outputs are computed once
 * per example and cached while the data and the context do not change. Owned by the
 * instance, constant after creation. Since 1.2. */
typedef struct ph_teacher_spec {
  uint32_t struct_size;
  int32_t top_k;     /* >= 1; larger than the vocabulary means all of it */
  float temperature; /* the teacher's logits are divided by max(temperature, 1e-5) */
  /* The text the teacher sees before every example, as token ids (the host adds nothing):
   * the cartridge's corpus. An example of the data with its own "context" field is
   * distilled with that context instead. May be empty (n_context_ids 0) then. */
  const int64_t* context_ids;
  int64_t n_context_ids;
  /* 1: distil only the positions the data labels (an example's output, as the Cartridges
   * paper's self-study loss covers the answer); 0: every position of the example (PEFT's
   * example train_distill.py). A host reads it only when struct_size covers it (0
   * otherwise). */
  int32_t labeled_only;
} ph_teacher_spec;

/* What forward/backward know of the batch. Since 1.0. */
typedef struct ph_batch {
  uint32_t struct_size;
  int64_t batch_size;
  const int64_t* task_ids; /* [batch_size] task index of each example, or NULL */
  /* The optimizer step this batch belongs to (0-based), so a method can key random
   * streams (dropout) to it and a resumed run draws the same numbers. */
  int64_t step;
} ph_batch;

/* A trainable tensor of an instance: borrowed views of the instance's memory, valid
 * until destroy. The host's optimizer reads `grad` and updates `value` in place; the
 * host zeroes `grad` before each accumulation. Since 1.0. */
typedef struct ph_parameter {
  uint32_t struct_size;
  const char* name; /* PEFT's module path, e.g. "embedding.weight", "mlp_head.0.weight" */
  DLTensor* value;
  DLTensor* grad;   /* same shape as value */
} ph_parameter;

/* Receives tensors and config fields the method exports. Host-owned. Since 1.0. */
typedef struct ph_tensor_sink {
  uint32_t struct_size;
  void* sink_data;
  /* The host copies the tensor during the call. */
  ph_status* (*put_tensor)(const struct ph_tensor_sink* sink, const char* name,
                           const DLTensor* tensor);
  /* A JSON object of adapter_config.json fields (merged over the host's own fields). */
  ph_status* (*put_config)(const struct ph_tensor_sink* sink, const char* json_object);
} ph_tensor_sink;

/* Gives tensors of an adapter being loaded. Host-owned. Since 1.0. */
typedef struct ph_tensor_source {
  uint32_t struct_size;
  void* source_data;
  /* The named tensor (float32; borrowed until the call that received the source returns),
   * or NULL when absent. */
  const DLTensor* (*get_tensor)(const struct ph_tensor_source* source, const char* name);
  const char* config_json; /* the adapter's adapter_config.json */
} ph_tensor_source;

/* ------------------------------------------------------------------ a method instance */

typedef struct ph_method ph_method;

/* One configured method with its parameters. Made by ph_plugin_entry.create, released by
 * its own destroy. All functions [instance] unless said otherwise. Since 1.0. */
struct ph_method {
  uint32_t struct_size;
  void* method_data; /* the plugin's */

  void (*destroy)(ph_method* self);
  /* The injection this instance produces (owned by the instance). */
  const ph_injection_spec* (*injection)(const ph_method* self);
  uint32_t (*parameter_count)(const ph_method* self);
  /* Parameter i < parameter_count into *out. */
  ph_status* (*parameter)(const ph_method* self, uint32_t i, ph_parameter* out);
  /* Writes the injection for a batch: `virtual_tokens` float32 [sets, n_virtual, dim]
   * (sets = batch_size when per_example, else 1) and `prefix` float32
   * [n_layers, 2, n_kv_heads, n_prefix, head_dim] (keys at [l][0], values at [l][1]);
   * either is NULL when the spec has none. `train` is 1 in training (dropout on). */
  ph_status* (*forward)(ph_method* self, const ph_batch* batch, int32_t train,
                        DLTensor* virtual_tokens, DLTensor* prefix);
  /* Adds d loss / d parameters to the parameters' grad, given d loss / d injection of
   * the last forward (same shapes as forward's outputs; NULL where absent). */
  ph_status* (*backward)(ph_method* self, const ph_batch* batch, const DLTensor* grad_virtual,
                         const DLTensor* grad_prefix);
  /* The inference tensors and adapter_config.json fields in Hugging Face PEFT's layout
   * (e.g. "prompt_embeddings" [n_virtual, dim]). */
  ph_status* (*export_adapter)(const ph_method* self, const ph_tensor_sink* sink);
  /* Sets the parameters from a PEFT-layout adapter (the inverse of export_adapter, for
   * what export keeps: a method whose encoder is discarded at export loads its
   * exported embeddings as a frozen injection). */
  ph_status* (*import_adapter)(ph_method* self, const ph_tensor_source* source);
  /* An optional extension table by id, or NULL. [thread-safe] */
  const void* (*get_extension)(const ph_method* self, const char* id);

  /* The fields below are since 1.2: a host reads each only when PH_HAS(self, ph_method,
   * field) and it is not NULL; a 1.0/1.1 instance has none and is driven as before. */

  /* forward and backward for every injection kind at once: the host calls these instead
   * of forward/backward when present (and must, when the spec has adapter prompts).
   * `tensors` as ph_injection_tensors says: outputs in forward_injection, d loss / d each
   * (read-only) in backward_injection. [instance] */
  ph_status* (*forward_injection)(ph_method* self, const ph_batch* batch, int32_t train,
                                  const ph_injection_tensors* tensors);
  ph_status* (*backward_injection)(ph_method* self, const ph_batch* batch,
                                   const ph_injection_tensors* grads);
  /* Lets the method rewrite the labels and loss weights of a training or evaluation
   * batch (`sequences`: batch->batch_size of them), after its forward and before the
   * loss. CPT scores its context and weights the loss by example. [instance] */
  ph_status* (*score_labels)(ph_method* self, const ph_batch* batch,
                             ph_scored_sequence* sequences);
  /* Called after the host's optimizer updated the parameters of optimizer step `step`
   * (0-based) and before any other call: the method may rewrite its parameters' values
   * (CPT projects its deltas back into their balls). The optimizer's moments are left
   * as they are. Not called after import_adapter or a resume (saved values are final).
   * [instance] */
  ph_status* (*after_step)(ph_method* self, int64_t step);
  /* Training by distillation: the teacher this instance is trained against, or NULL
   * (train on the labels). Owned by the instance, constant. [instance] */
  const ph_teacher_spec* (*teacher)(const ph_method* self);
};

/* ------------------------------------------------------------------ the entry */

/* The table ph_plugin_entry_v1 returns: static, const, valid while the library is
 * loaded. Since 1.0. */
typedef struct ph_plugin_entry {
  uint32_t struct_size;
  uint16_t abi_major; /* PH_ABI_MAJOR the plugin was built with */
  uint16_t abi_minor; /* PH_ABI_MINOR the plugin was built with */
  /* Called once after loading, before anything else. A plugin that needs a newer host
   * (host->abi_major != its major, or host->abi_minor < its minor) returns
   * PH_ERR_UNSUPPORTED naming both versions. `host` stays valid until deinit. [main-thread] */
  ph_status* (*init)(const ph_host* host);
  /* Called once before unloading, after every instance was destroyed. [main-thread] */
  void (*deinit)(void);
  const ph_method_descriptor* descriptor;
  /* Creates an instance for `model`: `config_json` is a JSON object of every declared
   * option (validated against the declaration; the method checks what the declaration
   * cannot say and fails with PH_ERR_INVALID_CONFIG naming the option), `seed` seeds its
   * initialisation through ph.host.random/1. `model_host` serves ph.host.model/1 for
   * this model. `flags`: PH_CREATE_* bits. On success *out is set. [thread-safe] */
  ph_status* (*create)(const ph_host* model_host, const ph_model_info* model,
                       const char* config_json, uint64_t seed, uint32_t flags, ph_method** out);
} ph_plugin_entry;

/* ph_plugin_entry.create flags. */
enum {
  /* The instance is made to receive import_adapter at once (loading a saved adapter):
   * skip initialisation work whose result the import overwrites, such as reading a
   * source adapter's file or running the model on an initialisation text. */
  PH_CREATE_FOR_IMPORT = 1u
};

/* The one symbol a plugin exports. */
typedef const ph_plugin_entry* (*ph_plugin_entry_fn)(void);
#define PH_PLUGIN_ENTRY_SYMBOL "ph_plugin_entry_v1"

/* ------------------------------------------------------------------ layouts of 1.0 and 1.1, frozen */

#if defined(__cplusplus) || (defined(__STDC_VERSION__) && __STDC_VERSION__ >= 201112L)
#ifdef __cplusplus
#define PH_STATIC_ASSERT static_assert
#else
#define PH_STATIC_ASSERT _Static_assert
#endif
#if UINTPTR_MAX == 0xffffffffffffffffu /* LP64 */
PH_STATIC_ASSERT(offsetof(ph_host, get_service) == 56, "ph_host 1.0 layout changed");
PH_STATIC_ASSERT(offsetof(ph_host_random, fill_integers) == 24, "ph_host_random 1.0 layout");
PH_STATIC_ASSERT(offsetof(ph_host_model, prefix_from_text) == 24, "ph_host_model 1.0 layout");
PH_STATIC_ASSERT(offsetof(ph_host_tensor_files, read_tensor) == 16, "ph_host_tensor_files 1.0");
PH_STATIC_ASSERT(offsetof(ph_model_info, eos_id) == 48, "ph_model_info 1.0 layout changed");
PH_STATIC_ASSERT(offsetof(ph_option, nullable) == 64, "ph_option 1.0 layout changed");
PH_STATIC_ASSERT(offsetof(ph_method_descriptor, n_options) == 48, "ph_method_descriptor 1.0");
PH_STATIC_ASSERT(offsetof(ph_injection_spec, template_text) == 16, "ph_injection_spec 1.0");
PH_STATIC_ASSERT(offsetof(ph_batch, step) == 24, "ph_batch 1.0 layout changed");
PH_STATIC_ASSERT(offsetof(ph_parameter, grad) == 24, "ph_parameter 1.0 layout changed");
PH_STATIC_ASSERT(offsetof(ph_tensor_sink, put_config) == 24, "ph_tensor_sink 1.0 layout");
PH_STATIC_ASSERT(offsetof(ph_tensor_source, config_json) == 24, "ph_tensor_source 1.0 layout");
PH_STATIC_ASSERT(offsetof(ph_method, get_extension) == 80, "ph_method 1.0 layout changed");
PH_STATIC_ASSERT(offsetof(ph_plugin_entry, create) == 32, "ph_plugin_entry 1.0 layout");
/* 1.1. sizeof(ph_model_info) is 80 with 4 bytes of tail padding after num_labels: a field
 * added there must not be an int32_t at offset 76 (see reserved_1_1). */
PH_STATIC_ASSERT(offsetof(ph_model_info, reserved_1_1) == 52, "ph_model_info 1.1 layout");
PH_STATIC_ASSERT(offsetof(ph_model_info, num_labels) == 72, "ph_model_info 1.1 layout changed");
PH_STATIC_ASSERT(offsetof(ph_method_descriptor, n_task_types) == 64, "ph_method_descriptor 1.1");
PH_STATIC_ASSERT(offsetof(ph_injection_spec, n_decoder_virtual) == 28, "ph_injection_spec 1.1");
/* 1.2 */
PH_STATIC_ASSERT(offsetof(ph_host_model, prefix_from_ids) == 32, "ph_host_model 1.2 layout");
PH_STATIC_ASSERT(offsetof(ph_injection_spec, adapter_layers) == 36, "ph_injection_spec 1.2");
PH_STATIC_ASSERT(offsetof(ph_injection_tensors, adapter_gates) == 32, "ph_injection_tensors 1.2");
PH_STATIC_ASSERT(offsetof(ph_scored_sequence, weights) == 48, "ph_scored_sequence 1.2");
PH_STATIC_ASSERT(offsetof(ph_teacher_spec, n_context_ids) == 24, "ph_teacher_spec 1.2");
PH_STATIC_ASSERT(offsetof(ph_teacher_spec, labeled_only) == 32, "ph_teacher_spec 1.2");
PH_STATIC_ASSERT(offsetof(ph_method, teacher) == 120, "ph_method 1.2 layout changed");
#endif
#endif

#ifdef __cplusplus
}
#endif

#endif /* PROMPTHOST_PLUGIN_ABI_H */
