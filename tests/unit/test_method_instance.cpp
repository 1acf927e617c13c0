// Method instances seen from the host: good_prompt on a tiny random model (spec,
// parameters, forward/backward shapes and accumulation, export/import), C++ exceptions
// inside the SDK coming back as ph::Error, a plugin written in C, and the model service
// (tokenize, embed, prefix_from_text) over the demo model.
#include <catch.hpp>

#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "host/plugin/dl_tensor.h"
#include "host/plugin/method_instance.h"
#include "host/plugin/method_options.h"
#include "host/plugin/plugin_library.h"
#include "host/plugin/status.h"
#include "models/loader/random_model.h"
#include "plugin_test_support.h"
#include "test_support.h"

using namespace ph::host;
using json = nlohmann::json;
using ph::test::contains;
using ph::test::error_of;
using ph::test::test_plugin;

namespace {

// A tiny model, a host for it, and good_prompt loaded.
struct Fixture {
  ph::Model model = ph::make_random_model(ph::test::tiny_llama_config(), 3);
  ModelHost host{model, nullptr};
  std::shared_ptr<PluginLibrary> library = PluginLibrary::load(test_plugin("good_prompt"));

  std::unique_ptr<MethodInstance> create(const json& config, uint64_t seed = 1,
                                         const std::vector<std::string>& set = {}) {
    return std::make_unique<MethodInstance>(
        library, host, resolve_options(library->descriptor(), config, set), seed);
  }
};

std::vector<float> values_of(const ParameterView& p) {
  return {p.value, p.value + p.numel};
}
std::vector<float> grads_of(const ParameterView& p) {
  return {p.grad, p.grad + p.numel};
}

template <class T>
std::vector<float> flat(const T& t) {
  return std::vector<float>(t.data(), t.data() + t.size());
}

// A deterministic, non-trivial gradient of the given shape.
template <size_t N>
xt::xtensor<float, N> ramp(const std::array<size_t, N>& shape) {
  xt::xtensor<float, N> t(shape);
  for (size_t i = 0; i < t.size(); ++i) t.data()[i] = 0.01f * (float)((i * 7) % 13) - 0.05f;
  return t;
}

DLTensor wrap(void* data, DLDataType dtype, std::vector<int64_t>& shape,
              std::vector<int64_t>* strides = nullptr) {
  DLTensor t{};
  t.data = data;
  t.device = {kDLCPU, 0};
  t.ndim = (int)shape.size();
  t.dtype = dtype;
  t.shape = shape.data();
  t.strides = strides ? strides->data() : nullptr;
  return t;
}

}  // namespace

TEST_CASE("a good_prompt instance reports its spec and parameters, initialised by seed") {
  Fixture f;
  auto m = f.create({{"num_virtual_tokens", 3}}, 11);
  const ph_injection_spec spec = m->injection();
  CHECK(spec.n_virtual == 3);
  CHECK(spec.per_example == 0);
  CHECK(spec.n_prefix == 0);
  CHECK(spec.template_text == nullptr);
  CHECK(m->options().at("num_virtual_tokens") == 3);
  REQUIRE(m->parameters().size() == 1);
  const ParameterView& p = m->parameters()[0];
  CHECK(p.name == "embedding.weight");
  CHECK(p.shape == std::vector<int64_t>{3, 16});
  CHECK(p.numel == 48);
  CHECK(m->parameter_count_total() == 48);

  // The plugin drew N(0, 1) through the host's random service with its seed, stream 0.
  std::vector<float> expected(48);
  std::vector<int64_t> shape = {3, 16};
  DLTensor t = wrap(expected.data(), kFloat32, shape);
  const auto* random = static_cast<const ph_host_random*>(base_service(PH_SERVICE_RANDOM));
  REQUIRE(random->fill_normal(base_host(), 11, 0, 0.0f, 1.0f, &t) == nullptr);
  CHECK(values_of(p) == expected);
  CHECK(grads_of(p) == std::vector<float>(48, 0.0f));

  CHECK(values_of(f.create({{"num_virtual_tokens", 3}}, 11)->parameters()[0]) == expected);
  CHECK(values_of(f.create({{"num_virtual_tokens", 3}}, 12)->parameters()[0]) != expected);
}

TEST_CASE("forward fills a shared injection; backward accumulates; zero_grad clears") {
  Fixture f;
  auto m = f.create({{"num_virtual_tokens", 3}});
  const ParameterView& p = m->parameters()[0];
  const ph::Injection inj = m->forward(4, {}, true);
  REQUIRE(inj.virtual_tokens.shape() == std::array<size_t, 3>{1, 3, 16});
  CHECK(inj.prefix.size() == 0);
  CHECK(flat(inj.virtual_tokens) == values_of(p));

  ph::InjectionGrad grad;
  grad.virtual_tokens = ramp<3>({1, 3, 16});
  m->backward(4, {}, grad);
  CHECK(grads_of(p) == flat(grad.virtual_tokens));
  m->backward(4, {}, grad);
  const std::vector<float> g = flat(grad.virtual_tokens);
  for (size_t i = 0; i < g.size(); ++i) CHECK(p.grad[i] == Approx(2 * g[i]));
  m->zero_grad();
  CHECK(grads_of(p) == std::vector<float>(48, 0.0f));

  // The host's optimizer writes values in place; the next forward sees them.
  p.value[5] = 42.0f;
  CHECK(m->forward(1, {}, false).virtual_tokens(0, 0, 5) == 42.0f);
}

TEST_CASE("per-example virtual tokens and a key/value prefix get their own shapes") {
  Fixture f;
  auto m = f.create({}, 5, {"num_virtual_tokens=2", "per_example=true", "num_prefix_tokens=3"});
  REQUIRE(m->parameters().size() == 2);
  const ParameterView& e = m->parameters()[0];
  const ParameterView& pre = m->parameters()[1];
  CHECK(pre.name == "prefix.weight");
  CHECK(pre.shape == std::vector<int64_t>{2, 2, 1, 3, 8});

  const ph::Injection inj = m->forward(3, {0, 1, 0}, true);
  REQUIRE(inj.virtual_tokens.shape() == std::array<size_t, 3>{3, 2, 16});
  REQUIRE(inj.prefix.shape() == std::array<size_t, 5>{2, 2, 1, 3, 8});
  for (size_t s = 0; s < 3; ++s)
    for (size_t i = 0; i < e.numel; ++i)
      CHECK(inj.virtual_tokens.data()[s * e.numel + i] == e.value[i]);
  CHECK(flat(inj.prefix) == values_of(pre));

  ph::InjectionGrad grad;
  grad.virtual_tokens = ramp<3>({3, 2, 16});
  grad.prefix = ramp<5>({2, 2, 1, 3, 8});
  m->backward(3, {0, 1, 0}, grad);
  for (size_t i = 0; i < e.numel; ++i) {
    const float sum = grad.virtual_tokens.data()[i] + grad.virtual_tokens.data()[e.numel + i] +
                      grad.virtual_tokens.data()[2 * e.numel + i];
    CHECK(e.grad[i] == Approx(sum));
  }
  CHECK(grads_of(pre) == flat(grad.prefix));
}

TEST_CASE("forward and backward reject batches and gradients that do not fit, naming the plugin") {
  Fixture f;
  auto m = f.create({{"num_virtual_tokens", 3}});
  CHECK(contains(error_of([&] { m->forward(0, {}, true); }), "plugin good_prompt: forward"));
  CHECK(contains(error_of([&] { m->forward(2, {1, 2, 3}, true); }), "3 task ids for a batch of 2"));

  ph::InjectionGrad wrong;
  wrong.virtual_tokens = ramp<3>({1, 4, 16});
  const std::string message = error_of([&] { m->backward(1, {}, wrong); });
  CHECK(contains(message, "plugin good_prompt: backward"));
  CHECK(contains(message, "[1, 4, 16]"));
  CHECK(contains(message, "expected [1, 3, 16]"));

  ph::InjectionGrad extra;
  extra.virtual_tokens = ramp<3>({1, 3, 16});
  extra.prefix = ramp<5>({2, 2, 1, 1, 8});
  CHECK(contains(error_of([&] { m->backward(1, {}, extra); }), "the method injects none"));
  CHECK(grads_of(m->parameters()[0]) == std::vector<float>(48, 0.0f));  // untouched
}

TEST_CASE("export gives PEFT-layout tensors and config; import restores them") {
  Fixture f;
  auto a = f.create({{"num_virtual_tokens", 3}, {"num_prefix_tokens", 1}}, 1);
  const MethodInstance::Adapter adapter = a->export_adapter();
  REQUIRE(adapter.tensors.count("prompt_embeddings"));
  const auto& [shape, values] = adapter.tensors.at("prompt_embeddings");
  CHECK(shape == std::vector<int64_t>{3, 16});
  CHECK(values == values_of(a->parameters()[0]));
  CHECK(adapter.tensors.at("prefix_key_values").first == std::vector<int64_t>{2, 2, 1, 1, 8});
  CHECK(adapter.config.at("num_virtual_tokens") == 3);
  CHECK(adapter.config.at("token_dim") == 16);

  auto b = f.create({{"num_virtual_tokens", 3}, {"num_prefix_tokens", 1}}, 2);
  REQUIRE(flat(b->forward(1, {}, false).virtual_tokens) !=
          flat(a->forward(1, {}, false).virtual_tokens));
  b->import_adapter(adapter);
  CHECK(flat(b->forward(1, {}, false).virtual_tokens) ==
        flat(a->forward(1, {}, false).virtual_tokens));
  CHECK(flat(b->forward(1, {}, false).prefix) == flat(a->forward(1, {}, false).prefix));

  // A missing or misshapen tensor fails, naming plugin and call, and changes nothing.
  auto c = f.create({{"num_virtual_tokens", 3}, {"num_prefix_tokens", 1}}, 3);
  const std::vector<float> before = values_of(c->parameters()[0]);
  MethodInstance::Adapter missing = adapter;
  missing.tensors.erase("prefix_key_values");
  CHECK(error_of([&] { c->import_adapter(missing); }) ==
        "plugin good_prompt: import_adapter: adapter has no tensor prefix_key_values");
  MethodInstance::Adapter misshapen = adapter;
  misshapen.tensors["prompt_embeddings"] = {{2, 16}, std::vector<float>(32, 0.0f)};
  CHECK(contains(error_of([&] { c->import_adapter(misshapen); }), "expected [3, 16]"));
  MethodInstance::Adapter inconsistent = adapter;
  inconsistent.tensors["prompt_embeddings"].second.pop_back();
  CHECK(contains(error_of([&] { c->import_adapter(inconsistent); }), "but 47 values"));
  CHECK(values_of(c->parameters()[0]) == before);
}

TEST_CASE("wrong_gradient is good_prompt with a backward of the wrong sign") {
  Fixture f;
  auto library = PluginLibrary::load(test_plugin("wrong_gradient"));
  MethodInstance m(library, f.host, resolve_options(library->descriptor(), {}, {}), 1);
  ph::InjectionGrad grad;
  grad.virtual_tokens = ramp<3>({1, 4, 16});
  m.backward(1, {}, grad);
  const std::vector<float> g = flat(grad.virtual_tokens);
  for (size_t i = 0; i < g.size(); ++i) CHECK(m.parameters()[0].grad[i] == -g[i]);
}

TEST_CASE("exceptions thrown inside the SDK come back as ph::Error with their message") {
  Fixture f;
  auto library = PluginLibrary::load(test_plugin("throws"));
  auto make = [&](const char* where) {
    return std::make_unique<MethodInstance>(
        library, f.host, resolve_options(library->descriptor(), {{"throw_in", where}}, {}), 1);
  };
  CHECK(error_of([&] { make("create"); }) ==
        "plugin throws: create: create exploded on purpose (throw_in=create)");
  CHECK(error_of([&] { make("forward")->forward(1, {}, true); }) ==
        "plugin throws: forward: forward exploded on purpose");
  ph::InjectionGrad grad;
  grad.virtual_tokens = ramp<3>({1, 1, 16});
  CHECK(error_of([&] { make("backward")->backward(1, {}, grad); }) ==
        "plugin throws: backward: unknown exception in plugin");
  CHECK(error_of([&] { make("export")->export_adapter(); }) ==
        "plugin throws: export_adapter: export failed on purpose");
  CHECK(error_of([&] { make("import")->import_adapter({}); }) ==
        "plugin throws: import_adapter: out of memory");

  // The instance that failed is still usable, and so is a well-behaved one.
  auto m = make("forward");
  CHECK_THROWS_AS(m->forward(1, {}, true), ph::Error);
  CHECK_NOTHROW(m->backward(1, {}, grad));
  CHECK(make("nothing")->forward(2, {}, true).virtual_tokens.shape(1) == 1);
}

TEST_CASE("a plugin written in C against the ABI alone works through the same host") {
  Fixture f;
  auto library = PluginLibrary::load(test_plugin("raw_prompt"));
  MethodInstance m(library, f.host,
                   resolve_options(library->descriptor(), {}, {"num_virtual_tokens=5"}), 4);
  REQUIRE(m.injection().n_virtual == 5);
  const ParameterView& p = m.parameters()[0];
  CHECK(flat(m.forward(2, {}, true).virtual_tokens) == values_of(p));
  ph::InjectionGrad grad;
  grad.virtual_tokens = ramp<3>({1, 5, 16});
  m.backward(2, {}, grad);
  CHECK(grads_of(p) == flat(grad.virtual_tokens));
  const auto adapter = m.export_adapter();
  CHECK(adapter.config.at("num_virtual_tokens") == 5);
  MethodInstance other(library, f.host, m.options(), 99);
  other.import_adapter(adapter);
  CHECK(values_of(other.parameters()[0]) == values_of(p));
}

TEST_CASE("the host rejects a strided parameter and an injection left unwritten") {
  Fixture f;
  auto strided = PluginLibrary::load(test_plugin("strided_parameter"));
  CHECK(error_of([&] {
          MethodInstance m(strided, f.host, resolve_options(strided->descriptor(), {}, {}), 1);
        }) ==
        "plugin strided_parameter: parameter embedding.weight: value is not compact "
        "row-major (shape [2, 16]); the host needs parameters in contiguous memory");

  auto lazy = PluginLibrary::load(test_plugin("lazy_forward"));
  MethodInstance m(lazy, f.host, resolve_options(lazy->descriptor(), {}, {}), 1);
  CHECK(error_of([&] { m.forward(1, {}, true); }) ==
        "plugin lazy_forward: forward: element 0 of virtual_tokens is not finite (not written, or "
        "the method diverged)");
}

// ---------------------------------------------------------------- the model service

namespace {

struct DemoFixture {
  ph::Model model = ph::load_model(ph::test::source_path("models/demo/hf"));
  std::unique_ptr<ph::Tokenizer> tokenizer =
      ph::load_tokenizer(ph::test::source_path("models/demo/hf"));
  ModelHost host{model, tokenizer.get()};
  const ph_host_model& service() const {
    return *static_cast<const ph_host_model*>(
        host.table()->get_service(host.table(), PH_SERVICE_MODEL));
  }
};

ph_code take_code(ph_status* s) {
  const ph_code code = status_code(s);
  base_host()->status_release(base_host(), s);
  return code;
}

}  // namespace

TEST_CASE("a ModelHost serves the model's facts, the model service and the random service") {
  DemoFixture d;
  const ph_host* table = d.host.table();
  CHECK(table->abi_major == PH_ABI_MAJOR);
  CHECK(table->get_service(table, PH_SERVICE_MODEL) != nullptr);
  CHECK(table->get_service(table, PH_SERVICE_RANDOM) == base_service(PH_SERVICE_RANDOM));
  CHECK(table->get_service(table, "ph.host.model/2") == nullptr);
  const ph_model_info& info = d.host.info();
  CHECK(std::string(info.arch) == "llama");
  CHECK(info.n_layers == 5);
  CHECK(info.dim == 128);
  CHECK(info.n_heads == 4);
  CHECK(info.n_kv_heads == 2);
  CHECK(info.head_dim == 32);
  CHECK(info.vocab_size == 1024);
  CHECK(info.max_positions == 256);
  CHECK(info.bos_id == 1);
  CHECK(info.eos_id == 2);
  // The same service called with a host table that has no model refuses politely.
  std::vector<int64_t> ids(4);
  std::vector<int64_t> shape = {4};
  DLTensor t = wrap(ids.data(), kInt64, shape);
  int64_t count = 0;
  CHECK(take_code(d.service().tokenize(base_host(), "x", &t, &count)) == PH_ERR_INVALID_ARGUMENT);
}

TEST_CASE("tokenize writes up to capacity and reports the full count") {
  DemoFixture d;
  const std::string text = "The computer is a fortune teller.";
  const std::vector<int32_t> expected = d.tokenizer->encode(text);
  REQUIRE(expected.size() > 3);

  std::vector<int64_t> ids(expected.size() + 2, -7);
  std::vector<int64_t> shape = {(int64_t)ids.size()};
  DLTensor t = wrap(ids.data(), kInt64, shape);
  int64_t count = 0;
  REQUIRE(d.service().tokenize(d.host.table(), text.c_str(), &t, &count) == nullptr);
  CHECK(count == (int64_t)expected.size());
  for (size_t i = 0; i < expected.size(); ++i) CHECK(ids[i] == expected[i]);
  CHECK(ids[expected.size()] == -7);

  std::vector<int64_t> small(3, -7);
  std::vector<int64_t> small_shape = {2};  // capacity 2 of a 3-slot buffer
  DLTensor ts = wrap(small.data(), kInt64, small_shape);
  REQUIRE(d.service().tokenize(d.host.table(), text.c_str(), &ts, &count) == nullptr);
  CHECK(count == (int64_t)expected.size());
  CHECK(small == std::vector<int64_t>{expected[0], expected[1], -7});
  REQUIRE(d.service().tokenize(d.host.table(), text.c_str(), nullptr, &count) == nullptr);
  CHECK(count == (int64_t)expected.size());

  std::vector<float> wrong(4);
  std::vector<int64_t> wrong_shape = {4};
  DLTensor tw = wrap(wrong.data(), kFloat32, wrong_shape);
  CHECK(take_code(d.service().tokenize(d.host.table(), text.c_str(), &tw, &count)) ==
        PH_ERR_INVALID_ARGUMENT);

  ModelHost no_tokenizer(d.model, nullptr);
  const auto& service = *static_cast<const ph_host_model*>(
      no_tokenizer.table()->get_service(no_tokenizer.table(), PH_SERVICE_MODEL));
  CHECK(take_code(service.tokenize(no_tokenizer.table(), "x", &t, &count)) == PH_ERR_UNSUPPORTED);
}

TEST_CASE("embed copies token embedding rows, into strided outputs too") {
  DemoFixture d;
  const int dim = d.model.config.dim;
  std::vector<int64_t> ids = {5, 17, 1023};
  std::vector<int64_t> id_shape = {3};
  DLTensor tid = wrap(ids.data(), kInt64, id_shape);

  // Column-major [3, dim].
  std::vector<float> out(3 * dim, 0.0f);
  std::vector<int64_t> out_shape = {3, dim}, out_strides = {1, 3};
  DLTensor to = wrap(out.data(), kFloat32, out_shape, &out_strides);
  REQUIRE(d.service().embed(d.host.table(), &tid, &to) == nullptr);
  for (int r = 0; r < 3; ++r)
    for (int c = 0; c < dim; ++c)
      CHECK(out[r + 3 * c] == d.model.token_embedding[ids[r] * dim + c]);

  std::vector<float> untouched(3 * dim, 9.0f);
  std::vector<int64_t> compact_shape = {3, dim};
  DLTensor tu = wrap(untouched.data(), kFloat32, compact_shape);
  ids[1] = 1024;  // outside the vocabulary
  ph_status* s = d.service().embed(d.host.table(), &tid, &tu);
  REQUIRE(s != nullptr);
  CHECK(status_code(s) == PH_ERR_INVALID_ARGUMENT);
  CHECK(contains(status_message(s), "token id 1024"));
  base_host()->status_release(base_host(), s);
  CHECK(untouched == std::vector<float>(3 * dim, 9.0f));

  ids[1] = 17;
  std::vector<int64_t> bad_shape = {3, dim - 1};
  DLTensor tb = wrap(untouched.data(), kFloat32, bad_shape);
  CHECK(take_code(d.service().embed(d.host.table(), &tid, &tb)) == PH_ERR_INVALID_ARGUMENT);
}

TEST_CASE("prefix_from_text is the key/value cache of the text, tiled or cut to n") {
  DemoFixture d;
  const ph::ModelConfig& c = d.model.config;
  const std::string text = "The computer";
  const std::vector<int32_t> ids = d.tokenizer->encode(text);
  REQUIRE(ids.size() >= 2);
  REQUIRE(ids.size() < 7);

  for (int64_t n : {int64_t{7}, int64_t{1}, (int64_t)ids.size()}) {
    INFO("n = " << n);
    std::vector<int32_t> tokens(n);
    for (int64_t j = 0; j < n; ++j) tokens[j] = ids[j % ids.size()];
    const std::vector<float> expected = ph::test::kv_cache_prefix(d.model, tokens);
    std::vector<float> out(expected.size(), NAN);
    std::vector<int64_t> shape = {c.n_layers, 2, c.n_kv_heads, n, c.head_dim};
    DLTensor t = wrap(out.data(), kFloat32, shape);
    REQUIRE(d.service().prefix_from_text(d.host.table(), text.c_str(), &t) == nullptr);
    CHECK(ph::test::relative_l2(out.data(), expected.data(), out.size()) < 1e-6);
  }

  std::vector<float> out(10, 3.0f);
  std::vector<int64_t> wrong = {c.n_layers, 2, c.n_kv_heads + 1, 1, c.head_dim};
  DLTensor tw = wrap(out.data(), kFloat32, wrong);
  CHECK(take_code(d.service().prefix_from_text(d.host.table(), text.c_str(), &tw)) ==
        PH_ERR_INVALID_ARGUMENT);
  std::vector<int64_t> too_long = {c.n_layers, 2, c.n_kv_heads, c.max_positions + 1, c.head_dim};
  DLTensor tl = wrap(out.data(), kFloat32, too_long);
  CHECK(take_code(d.service().prefix_from_text(d.host.table(), text.c_str(), &tl)) ==
        PH_ERR_INVALID_ARGUMENT);
  std::vector<int64_t> ok = {c.n_layers, 2, c.n_kv_heads, 1, c.head_dim};
  std::vector<float> big(c.n_layers * 2 * c.n_kv_heads * c.head_dim);
  DLTensor te = wrap(big.data(), kFloat32, ok);
  CHECK(take_code(d.service().prefix_from_text(d.host.table(), "", &te)) ==
        PH_ERR_INVALID_ARGUMENT);
}
