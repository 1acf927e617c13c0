// Sizes in model files are untrusted: each is bounded, and checked against the weights the
// file holds, before anything is allocated from it. The suite counts the heap bytes a call
// holds at its peak (this executable replaces the global operator new), so "refused before
// allocating" is measured, not assumed.
#include <catch.hpp>

#include <atomic>
#include <climits>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <new>

#include <nlohmann/json.hpp>

#include "models/common/error.h"
#include "models/config/model_config.h"
#include "models/engine/model.h"
#include "models/generate/generate.h"
#include "test_support.h"

using Catch::Matchers::Contains;
namespace fs = std::filesystem;

// ---- Counting the heap ----------------------------------------------------------------

namespace {

std::atomic<size_t> g_live{0};
std::atomic<size_t> g_peak{0};
constexpr size_t kHeader = 16;  // keeps malloc's 16-byte alignment; holds the size

void* counted_new(size_t n) {
  void* base = std::malloc(n + kHeader);
  if (!base) return nullptr;
  *static_cast<size_t*>(base) = n;
  const size_t live = g_live += n;
  size_t peak = g_peak.load();
  while (live > peak && !g_peak.compare_exchange_weak(peak, live)) {
  }
  return static_cast<char*>(base) + kHeader;
}

void counted_delete(void* p) noexcept {
  if (!p) return;
  char* base = static_cast<char*>(p) - kHeader;
  g_live -= *reinterpret_cast<size_t*>(base);
  std::free(base);
}

void* counted_new_or_throw(size_t n) {
  void* p = counted_new(n);
  if (!p) throw std::bad_alloc();
  return p;
}

}  // namespace

void* operator new(size_t n) {
  return counted_new_or_throw(n);
}
void* operator new[](size_t n) {
  return counted_new_or_throw(n);
}
void* operator new(size_t n, const std::nothrow_t&) noexcept {
  return counted_new(n);
}
void* operator new[](size_t n, const std::nothrow_t&) noexcept {
  return counted_new(n);
}
void operator delete(void* p) noexcept {
  counted_delete(p);
}
void operator delete[](void* p) noexcept {
  counted_delete(p);
}
void operator delete(void* p, size_t) noexcept {
  counted_delete(p);
}
void operator delete[](void* p, size_t) noexcept {
  counted_delete(p);
}
void operator delete(void* p, const std::nothrow_t&) noexcept {
  counted_delete(p);
}
void operator delete[](void* p, const std::nothrow_t&) noexcept {
  counted_delete(p);
}

namespace {

// The most heap `fn` held at once beyond what was live when it started, in bytes.
template <class Fn>
size_t peak_bytes(Fn&& fn) {
  const size_t before = g_live.load();
  g_peak = before;
  fn();
  return g_peak.load() - before;
}

constexpr size_t kMiB = size_t{1} << 20;

std::string robustness(const std::string& name) {
  return ph::test::fixtures_dir() + "/robustness/" + name;
}

// A copy of the llama-tiny fixture folder (config.json + model.safetensors, 2 layers of
// width 64, ffn 172) with config.json's `field` set to `value`.
std::string llama_tiny_with(const std::string& field, const nlohmann::json& value) {
  const std::string source = ph::test::fixtures_dir() + "/models/llama-tiny";
  const std::string dir = ph::test::temp_dir("model_limits_" + field);
  fs::copy_file(source + "/model.safetensors", dir + "/model.safetensors");
  nlohmann::json config = nlohmann::json::parse(std::ifstream(source + "/config.json"));
  config[field] = value;
  std::ofstream(dir + "/config.json") << config.dump(2);
  return dir;
}

// The ph::Error a load throws, and the heap it held at its peak meanwhile.
struct Refusal {
  std::string message;
  size_t peak = 0;
};
Refusal refuse_load(const std::string& path) {
  Refusal r;
  r.peak = peak_bytes([&] { r.message = ph::test::error_of([&] { ph::load_model(path); }); });
  return r;
}

}  // namespace

TEST_CASE("limits: the fuzzer's overflowing headers are refused, naming the file and field",
          "[limits]") {
  // Both once computed (n_heads + 2 n_kv_heads) * head_dim in int: 3 * 2^30 overflowed.
  const std::string json = robustness("config_validate_overflow.json");
  CHECK_THAT(ph::test::error_of([&] { ph::parse_hf_config(json); }),
             Contains(json) && Contains("field 'hidden_size' is 2000000000") &&
                 Contains("at most 1048576"));
  const std::string bin = robustness("llama2c_validate_overflow.bin");
  CHECK_THAT(ph::test::error_of([&] { ph::load_model(bin); }),
             Contains(bin) && Contains("dim (1073741824) exceeds 1048576"));
}

TEST_CASE("limits: validate_config bounds every size and the widths the heads make", "[limits]") {
  ph::ModelConfig c =
      ph::parse_hf_config(ph::test::fixtures_dir() + "/models/llama-tiny/config.json");
  REQUIRE_NOTHROW(ph::validate_config(c, "src"));
  ph::ModelConfig bad = c;
  bad.n_layers = ph::kMaxLayers + 1;
  CHECK_THAT(ph::test::error_of([&] { ph::validate_config(bad, "src.bin"); }),
             Contains("src.bin: n_layers (1025) exceeds 1024"));
  bad = c;
  bad.n_heads = bad.n_kv_heads = 1 << 17;  // each within the limit, their width not
  CHECK_THAT(ph::test::error_of([&] { ph::validate_config(bad, "src.bin"); }),
             Contains("n_heads * head_dim (2097152) exceeds 1048576"));
  bad = c;
  bad.max_positions = INT_MAX;
  CHECK_THAT(ph::test::error_of([&] { ph::validate_config(bad, "src.bin"); }),
             Contains("max_positions (2147483647) exceeds 16777216"));
}

TEST_CASE("limits: config.json sizes beyond the limits are errors, not bad_alloc", "[limits]") {
  // Each ended in a bare std::bad_alloc (layers, fused buffers, the rotary table).
  const std::pair<const char*, long long> cases[] = {{"num_hidden_layers", INT_MAX},
                                                     {"intermediate_size", 1LL << 25},
                                                     {"max_position_embeddings", INT_MAX},
                                                     {"vocab_size", 1LL << 30}};
  for (const auto& [field, value] : cases) {
    INFO(field << " = " << value);
    const std::string dir = llama_tiny_with(field, value);
    const Refusal r = refuse_load(dir);
    CHECK_THAT(r.message,
               Contains(dir + "/config.json") &&
                   Contains("field '" + std::string(field) + "' is " + std::to_string(value)) &&
                   Contains("PromptHost accepts at most"));
    CHECK(r.peak < kMiB);
  }
}

TEST_CASE("limits: config.json sizes within the limits are checked against the tensors first",
          "[limits]") {
  // intermediate_size 2^20 passes the limit; the fused gate|up buffer it implies is 512 MiB
  // (2^23 once took 8 GB and 50 s to reach the shape error).
  const std::string wide = llama_tiny_with("intermediate_size", 1 << 20);
  const Refusal r = refuse_load(wide);
  CHECK_THAT(r.message, Contains("model.safetensors") &&
                            Contains("'model.layers.0.mlp.gate_proj.weight' has shape [172, 64]") &&
                            Contains("expected [1048576, 64] from config.json"));
  CHECK(r.peak < 4 * kMiB);

  const std::string heads = llama_tiny_with("head_dim", 4096);
  const Refusal h = refuse_load(heads);
  CHECK_THAT(h.message, Contains("'model.layers.0.self_attn.q_proj.weight' has shape [64, 64]") &&
                            Contains("expected [16384, 64]"));
  CHECK(h.peak < 4 * kMiB);
}

TEST_CASE("limits: a long context costs nothing until it is used", "[limits]") {
  // The rotary table was built for every position of the context on each request (and its
  // size overflowed int): 2^24 positions of head_dim 16 are 1 GiB of cos/sin.
  const std::string dir = llama_tiny_with("max_position_embeddings", ph::kMaxPositions);
  const ph::Model model = ph::load_model(dir);
  REQUIRE(model.config.max_positions == ph::kMaxPositions);
  ph::GenerateOptions options;
  options.max_new_tokens = 8;
  options.sampling.temperature = 0;
  std::vector<int32_t> ids;
  const size_t peak = peak_bytes([&] {
    ids = ph::generate(model, ph::InjectionCache(), {1, 5, 9}, options);
  });
  CHECK(ids.size() == 8);
  CHECK(peak < 4 * kMiB);
}

TEST_CASE("limits: a llama2.c header is checked against the file size before allocating",
          "[limits]") {
  // A 7B-sized header (dim 4096, hidden 11008, 32 layers, 32 heads, vocabulary 32000,
  // context 2048) on a file of 28 bytes.
  const std::string path = ph::test::temp_dir("model_limits_llama2c") + "/seven_b.bin";
  const int32_t header[7] = {4096, 11008, 32, 32, 32, 32000, 2048};
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(header), 28);
  const Refusal r = refuse_load(path);
  CHECK_THAT(r.message, Contains(path) && Contains("is 28 bytes") && Contains("implies"));
  CHECK(r.peak < kMiB);
}
