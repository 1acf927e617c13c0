// What the checks run a plugin against: a tiny random llama model with a stand-in
// tokenizer, the plugin loaded with its default options, random batches shaped by the
// instance's injection, and helpers to compare tensors and parameters.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "host/plugin/method_instance.h"
#include "host/plugin/plugin_library.h"
#include "host/validate/check.h"
#include "models/engine/engine.h"
#include "models/tokenizer/tokenizer.h"

namespace ph::validate {

// Two layers, dim 24, 4 query heads over 2 key/value heads (GQA), head_dim 6, vocab 48.
ModelConfig tiny_model_config();

// A tokenizer for the tiny model: one id per byte (3 + byte mod (vocab - 3)); BOS 1, EOS 2.
std::unique_ptr<Tokenizer> make_byte_tokenizer(int vocab_size);

// The plugin loaded, the tiny model served to it, and its options resolved (the defaults
// and the context's --set assignments).
struct Fixture {
  explicit Fixture(const Context& ctx);
  ~Fixture();
  Fixture(const Fixture&) = delete;
  Fixture& operator=(const Fixture&) = delete;

  // A new instance with the fixture's options (or `opts`) and `seed`.
  std::unique_ptr<host::MethodInstance> create(uint64_t seed) const;
  std::unique_ptr<host::MethodInstance> create(uint64_t seed, const nlohmann::json& opts) const;

  std::shared_ptr<host::PluginLibrary> library;
  Model model;
  std::unique_ptr<Tokenizer> tokenizer;
  std::unique_ptr<host::ModelHost> model_host;
  nlohmann::json options;  // every option resolved
  int64_t num_tasks = 0;   // the "num_tasks" option, 0 when the method has none
};

// The adapter prompts of an instance's spec as the plugin reports it (ph_injection_spec
// since 1.2; 0 / 0 for an older spec): read from the plugin's table, not the host's copy.
struct AdapterSpec {
  int32_t adapter_len = 0;
  int32_t adapter_layers = 0;
};
AdapterSpec adapter_spec(const host::MethodInstance& instance);

// A batch to run an instance's injection through the frozen model.
struct Probe {
  std::vector<Sequence> sequences;
  std::vector<int64_t> task_ids;  // empty, or one per sequence
  int64_t size() const { return (int64_t)sequences.size(); }
};

// `batch_size` sequences of different random lengths with the injection's virtual tokens
// placed as its template says (all prepended without one), some labels scored, and task
// ids in [0, num_tasks) when num_tasks > 0. Only the slots the host feeds are placed
// (MethodInstance::virtual_layout): the decoder's first, then the input's.
Probe make_probe(const host::MethodInstance& instance, const Fixture& fixture, int batch_size,
                 std::mt19937_64& rng);

// The loss of the instance's injection for the probe (forward with train as given).
double probe_loss(host::MethodInstance& instance, const Model& model, const Probe& probe,
                  bool train = false);

// Forward (train as given), loss, backward through the model and the instance, with the
// parameter gradients zeroed first. Returns the loss; `injection_out` gets the injection.
double probe_loss_and_gradient(host::MethodInstance& instance, const Model& model,
                               const Probe& probe, bool train = false,
                               Injection* injection_out = nullptr);

// Every parameter's values (or gradients) one after another, in parameter order.
std::vector<float> flat_values(const host::MethodInstance& instance);
std::vector<float> flat_grads(const host::MethodInstance& instance);
// Writes `values` (as flat_values lays them out) into the instance's parameters.
void set_flat_values(host::MethodInstance& instance, const std::vector<float>& values);

bool all_finite(const float* data, size_t n);
bool all_finite(const Injection& injection);
// Same shapes and the same bits.
bool bit_identical(const Injection& a, const Injection& b);
// The n floats at a and at b have the same bytes. n == 0 is true without reading, as an
// empty tensor's or vector's data() may be null (which memcmp must never be given).
bool same_bytes(const float* a, const float* b, size_t n);
// max |a - b| / max(max |b|, tiny); infinity when the shapes differ.
double max_relative_difference(const Injection& a, const Injection& b);
std::string describe_shapes(const Injection& injection);

// A gradient against finite differences along unit directions u: a central difference
// of loss(step) = loss at x + step * u must equal <grad, u> within kFdRelativeTolerance *
// |grad| + kFdAbsoluteTolerance. Steps 1e-2 and 1e-3 are tried and the smaller error
// counts: a large step suffers from curvature, a small one from float32 rounding.
constexpr double kFdRelativeTolerance = 1e-2;
constexpr double kFdAbsoluteTolerance = 1e-6;
struct DirectionalDifference {
  double finite_difference = 0.0, analytic = 0.0, error = 0.0, step = 0.0;
};
DirectionalDifference directional_difference(const std::function<double(double)>& loss_along,
                                             double analytic);
// "finite difference F (step S), analytic A, error E (tolerance T)".
std::string describe(const DirectionalDifference& d, double tolerance);
// Checks `grad` along itself and along `random_directions` random unit directions
// (drawn from rng); loss_at(u, step) is the loss at x + step * u. Fails naming `what`;
// notes one line per direction.
void check_directions(const std::vector<double>& grad, int random_directions, std::mt19937_64& rng,
                      const std::function<double(const std::vector<double>&, double)>& loss_at,
                      const std::string& what, Report& report);

// "1.5e-03"-style number formatting for notes.
std::string sci(double value);

// A fresh temporary folder, removed with the object.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace ph::validate
