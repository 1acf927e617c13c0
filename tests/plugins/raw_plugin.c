/* raw_plugin.c: a plugin written against the C ABI alone (no SDK, no C++), compiled once
 * as a correct plugin (raw_prompt) and once per defect, selected by a PH_TEST_VARIANT_*
 * definition (tests/plugins/CMakeLists.txt). Most defects are ones the host must reject
 * at load time with a message naming the file and the reason; LAZY_FORWARD and
 * STRIDED_PARAMETER are caught at instance level; CRASHES raises SIGSEGV in forward for
 * the conformance runner's crash isolation (never call its forward in a test process).
 *
 * The method: `num_virtual_tokens` shared virtual tokens, one parameter
 * "embedding.weight" [n, dim] drawn N(0, 1) from the host's random service. */
#include <prompthost_sdk/plugin_abi.h>

#include <ctype.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef PH_TEST_NAME
#define PH_TEST_NAME "raw_prompt"
#endif

/* ---------------------------------------------------------------- helpers */

static ph_status* error(const ph_host* host, ph_code code, const char* message) {
  return host->status_new(host, code, message);
}

/* Element offset of index (i0, i1, i2) in a rank-3 or rank-2 tensor (strides honoured). */
static int64_t offset3(const DLTensor* t, int64_t i0, int64_t i1, int64_t i2) {
  if (t->strides) return i0 * t->strides[0] + i1 * t->strides[1] + i2 * t->strides[2];
  return (i0 * t->shape[1] + i1) * t->shape[2] + i2;
}
static int64_t offset2(const DLTensor* t, int64_t i0, int64_t i1) {
  if (t->strides) return i0 * t->strides[0] + i1 * t->strides[1];
  return i0 * t->shape[1] + i1;
}
static float* floats(const DLTensor* t) {
  return (float*)((char*)t->data + t->byte_offset);
}

static int is_float32(const DLTensor* t) {
  return t && t->dtype.code == kDLFloat && t->dtype.bits == 32 && t->dtype.lanes == 1;
}

/* num_virtual_tokens from the host's config JSON ({"num_virtual_tokens":N}), or -1 when
 * the text is not such an object. The host validated the values against the declaration;
 * this only has to refuse what is not a JSON object with the key (a C plugin has no JSON
 * parser at hand, so the scan is deliberately narrow). */
static long config_tokens(const char* json) {
  if (!json) return -1;
  while (isspace((unsigned char)*json)) ++json;
  size_t len = strlen(json);
  while (len > 0 && isspace((unsigned char)json[len - 1])) --len;
  if (len < 2 || json[0] != '{' || json[len - 1] != '}') return -1;
  const char* key = strstr(json, "\"num_virtual_tokens\"");
  const char* colon = key ? strchr(key, ':') : NULL;
  if (!colon) return -1;
  char* end = NULL;
  const long n = strtol(colon + 1, &end, 10);
  return end != colon + 1 && n >= 1 && n <= 16 ? n : -1;
}

/* ---------------------------------------------------------------- the instance */

typedef struct raw_instance {
  ph_method table;
  const ph_host* host;
  ph_injection_spec spec;
  int64_t n, dim;
  int64_t shape[2];
  int64_t strides[2];
  float* value;
  float* grad;
  DLTensor value_dl, grad_dl;
} raw_instance;

static raw_instance* self_of(const ph_method* m) {
  return (raw_instance*)m->method_data;
}

static void raw_destroy(ph_method* m) {
  raw_instance* in = self_of(m);
  free(in->value);
  free(in->grad);
  free(in);
}

static const ph_injection_spec* raw_injection(const ph_method* m) {
  return &self_of(m)->spec;
}

static uint32_t raw_parameter_count(const ph_method* m) {
  (void)m;
  return 1;
}

static ph_status* raw_parameter(const ph_method* m, uint32_t i, ph_parameter* out) {
  raw_instance* in = self_of(m);
  if (i != 0) return error(in->host, PH_ERR_INVALID_ARGUMENT, "parameter index out of range");
  out->struct_size = sizeof(ph_parameter);
  out->name = "embedding.weight";
  out->value = &in->value_dl;
  out->grad = &in->grad_dl;
  return NULL;
}

static ph_status* raw_forward(ph_method* m, const ph_batch* batch, int32_t train,
                              DLTensor* virtual_tokens, DLTensor* prefix) {
  raw_instance* in = self_of(m);
  (void)batch;
  (void)train;
  (void)prefix;
#ifdef PH_TEST_VARIANT_CRASHES
  raise(SIGSEGV); /* what a wild pointer would do, deterministically */
#endif
#ifdef PH_TEST_VARIANT_LAZY_FORWARD
  return NULL; /* "succeeds" without writing its output */
#endif
  if (!is_float32(virtual_tokens) || virtual_tokens->ndim != 3 || virtual_tokens->shape[0] != 1 ||
      virtual_tokens->shape[1] != in->n || virtual_tokens->shape[2] != in->dim)
    return error(in->host, PH_ERR_INVALID_ARGUMENT, "virtual_tokens must be float32 [1, n, dim]");
  float* out = floats(virtual_tokens);
  for (int64_t j = 0; j < in->n; ++j)
    for (int64_t d = 0; d < in->dim; ++d)
      out[offset3(virtual_tokens, 0, j, d)] = in->value[j * in->dim + d];
  return NULL;
}

static ph_status* raw_backward(ph_method* m, const ph_batch* batch, const DLTensor* grad_virtual,
                               const DLTensor* grad_prefix) {
  raw_instance* in = self_of(m);
  (void)batch;
  (void)grad_prefix;
  if (!is_float32(grad_virtual) || grad_virtual->ndim != 3 || grad_virtual->shape[0] != 1 ||
      grad_virtual->shape[1] != in->n || grad_virtual->shape[2] != in->dim)
    return error(in->host, PH_ERR_INVALID_ARGUMENT, "grad_virtual must be float32 [1, n, dim]");
  const float* g = floats(grad_virtual);
  for (int64_t j = 0; j < in->n; ++j)
    for (int64_t d = 0; d < in->dim; ++d)
      in->grad[j * in->dim + d] += g[offset3(grad_virtual, 0, j, d)];
  return NULL;
}

static ph_status* raw_export(const ph_method* m, const ph_tensor_sink* sink) {
  raw_instance* in = self_of(m);
  ph_status* s = sink->put_tensor(sink, "prompt_embeddings", &in->value_dl);
  if (s) return s;
  char config[64];
  snprintf(config, sizeof config, "{\"num_virtual_tokens\": %ld}", (long)in->n);
  return sink->put_config(sink, config);
}

static ph_status* raw_import(ph_method* m, const ph_tensor_source* source) {
  raw_instance* in = self_of(m);
  const DLTensor* t = source->get_tensor(source, "prompt_embeddings");
  if (!t) return error(in->host, PH_ERR_DATA_LOSS, "adapter has no tensor prompt_embeddings");
  if (!is_float32(t) || t->ndim != 2 || t->shape[0] != in->n || t->shape[1] != in->dim)
    return error(in->host, PH_ERR_DATA_LOSS, "prompt_embeddings must be float32 [n, dim]");
  const float* v = floats(t);
  for (int64_t j = 0; j < in->n; ++j)
    for (int64_t d = 0; d < in->dim; ++d) in->value[j * in->dim + d] = v[offset2(t, j, d)];
  return NULL;
}

static const void* raw_get_extension(const ph_method* m, const char* id) {
  (void)m;
  (void)id;
  return NULL;
}

static void describe_matrix(DLTensor* t, float* data, int64_t* shape) {
  memset(t, 0, sizeof *t);
  t->data = data;
  t->device.device_type = kDLCPU;
  t->ndim = 2;
  t->dtype.code = kDLFloat;
  t->dtype.bits = 32;
  t->dtype.lanes = 1;
  t->shape = shape;
}

static ph_status* raw_create(const ph_host* host, const ph_model_info* model,
                             const char* config_json, uint64_t seed, uint32_t flags,
                             ph_method** out) {
  (void)flags;
  const ph_host_random* random = (const ph_host_random*)host->get_service(host, PH_SERVICE_RANDOM);
  if (!random) return error(host, PH_ERR_UNSUPPORTED, "the host has no ph.host.random/1");
  const long n = config_tokens(config_json);
  if (n < 0)
    return error(host, PH_ERR_INVALID_CONFIG,
                 "config_json must be a JSON object with num_virtual_tokens in [1, 16]");
  raw_instance* in = (raw_instance*)calloc(1, sizeof *in);
  if (!in) return error(host, PH_ERR_OUT_OF_MEMORY, "out of memory");
  in->host = host;
  in->n = n;
  in->dim = model->dim;
  in->value = (float*)calloc((size_t)(in->n * in->dim), sizeof(float));
  in->grad = (float*)calloc((size_t)(in->n * in->dim), sizeof(float));
  if (!in->value || !in->grad) {
    free(in->value);
    free(in->grad);
    free(in);
    return error(host, PH_ERR_OUT_OF_MEMORY, "out of memory");
  }
  in->shape[0] = in->n;
  in->shape[1] = in->dim;
  describe_matrix(&in->value_dl, in->value, in->shape);
  describe_matrix(&in->grad_dl, in->grad, in->shape);
#ifdef PH_TEST_VARIANT_STRIDED_PARAMETER
  /* The value viewed column-major: a legal DLTensor, but not one the host's optimizer
   * can walk as a flat array. */
  in->strides[0] = 1;
  in->strides[1] = in->n;
  in->value_dl.strides = in->strides;
#endif
  ph_status* s = random->fill_normal(host, seed, 0, 0.0f, 1.0f, &in->value_dl);
  if (s) {
    free(in->value);
    free(in->grad);
    free(in);
    return s;
  }
  in->spec.struct_size = sizeof(ph_injection_spec);
  in->spec.n_virtual = (int32_t)in->n;

  ph_method* t = &in->table;
  t->struct_size = sizeof(ph_method);
  t->method_data = in;
  t->destroy = raw_destroy;
  t->injection = raw_injection;
  t->parameter_count = raw_parameter_count;
  t->parameter = raw_parameter;
  t->forward = raw_forward;
  t->backward = raw_backward;
  t->export_adapter = raw_export;
  t->import_adapter = raw_import;
  t->get_extension = raw_get_extension;
  *out = t;
  return NULL;
}

/* ---------------------------------------------------------------- description and entry */

static ph_status* raw_init(const ph_host* host) {
#ifdef PH_TEST_VARIANT_INIT_FAILS
  return host->status_new(host, PH_ERR_UNSUPPORTED,
                          "init_fails refuses to start: it needs a GPU this host does not have");
#else
  /* Uses only 1.0 features, so any 1.x host will do (no minor check needed). */
  if (host->abi_major != PH_ABI_MAJOR)
    return host->status_new(host, PH_ERR_UNSUPPORTED, "raw plugin needs a host of ABI 1.x");
  return NULL;
#endif
}

static void raw_deinit(void) {}

#if defined(PH_TEST_VARIANT_BAD_DEFAULT_JSON)
#define DEFAULT_TOKENS "twenty"
#elif defined(PH_TEST_VARIANT_BAD_DEFAULT_RANGE)
#define DEFAULT_TOKENS "0"
#else
#define DEFAULT_TOKENS "2"
#endif

static const ph_option kOptions[] = {{
#ifdef PH_TEST_VARIANT_SMALL_OPTION
    8,
#else
    sizeof(ph_option),
#endif
    "num_virtual_tokens", PH_OPTION_INT, DEFAULT_TOKENS, "virtual tokens", NULL, 1, 16, 0}};

/* unused in the variants that hand out no descriptor or no entry */
__attribute__((unused)) static const ph_method_descriptor kDescriptor = {
#ifdef PH_TEST_VARIANT_SMALL_DESCRIPTOR
    16,
#else
    sizeof(ph_method_descriptor),
#endif
#ifdef PH_TEST_VARIANT_NO_NAME
    NULL,
#else
    PH_TEST_NAME,
#endif
#ifdef PH_TEST_VARIANT_NO_PEFT_TYPE
    NULL,
#else
    "PROMPT_TUNING",
#endif
    "1.0.0", "A plugin written against the C ABI alone (PromptHost's tests).", kOptions, 1,
    NULL, 0 /* task types not declared: offered every one (as a 1.0 plugin) */};

__attribute__((unused)) static const ph_plugin_entry kEntry = {
#ifdef PH_TEST_VARIANT_SMALL_TABLE
    offsetof(ph_plugin_entry, descriptor), /* a table that ends before the descriptor */
#else
    sizeof(ph_plugin_entry),
#endif
#ifdef PH_TEST_VARIANT_WRONG_ABI
    2, /* abi_major: a plugin of the next ABI major, exported under the v1 name */
#else
    PH_ABI_MAJOR,
#endif
#ifdef PH_TEST_VARIANT_TOO_NEW
    PH_ABI_MINOR + 1, /* needs a host newer than this one; raw_init does not check */
#else
    PH_ABI_MINOR,
#endif
    raw_init,
    raw_deinit,
#ifdef PH_TEST_VARIANT_NULL_DESCRIPTOR
    NULL,
#else
    &kDescriptor,
#endif
    raw_create};

PH_EXPORT const ph_plugin_entry* ph_plugin_entry_v1(void) {
#ifdef PH_TEST_VARIANT_NULL_ENTRY
  return NULL;
#else
  return &kEntry;
#endif
}
