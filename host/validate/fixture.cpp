#include "host/validate/fixture.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "host/plugin/method_options.h"
#include "models/common/error.h"
#include "models/loader/random_model.h"

namespace ph::validate {

ModelConfig tiny_model_config() {
  ModelConfig c;
  c.arch = Arch::kLlama;
  c.n_layers = 2;
  c.dim = 24;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.head_dim = 6;
  c.ffn_dim = 48;
  c.vocab_size = 48;
  c.max_positions = 512;  // room for long prompts and prefixes
  c.bos_id = 1;
  c.eos_id = 2;
  return c;
}

namespace {

class ByteTokenizer : public Tokenizer {
 public:
  explicit ByteTokenizer(int vocab_size) : vocab_(vocab_size) {}
  std::vector<int32_t> encode(std::string_view text) const override {
    std::vector<int32_t> ids;
    for (unsigned char ch : text) ids.push_back(3 + ch % (vocab_ - 3));
    return ids;
  }
  std::string decode(const std::vector<int32_t>& ids) const override {
    std::string text;
    for (int32_t id : ids)
      if (id >= 3) text += (char)('0' + (id - 3) % 64);
    return text;
  }
  int vocab_size() const override { return vocab_; }
  int bos_id() const override { return 1; }
  int eos_id() const override { return 2; }

 private:
  int vocab_;
};

// Random token ids of real (non-special) tokens.
std::vector<int32_t> random_tokens(std::mt19937_64& rng, int vocab, int count) {
  std::vector<int32_t> ids(count);
  for (auto& id : ids) id = 3 + (int32_t)(rng() % (uint64_t)(vocab - 3));
  return ids;
}

std::string trim(const std::string& s) {
  const size_t b = s.find_first_not_of(" \t\n");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t\n") - b + 1);
}

// Appends the tokens of one sequence laid out by `template_text` (or all virtual tokens
// prepended to a random input when it is empty); `scored[t]` marks label positions.
void lay_out(const std::string& template_text, int n_virtual, const Tokenizer& tokenizer,
             std::mt19937_64& rng, int vocab, Sequence& seq, std::vector<bool>& scored) {
  auto append = [&](const std::vector<int32_t>& ids, bool score) {
    seq.tokens.insert(seq.tokens.end(), ids.begin(), ids.end());
    scored.insert(scored.end(), ids.size(), score);
  };
  auto input = [&]() { return random_tokens(rng, vocab, 3 + (int)(rng() % 9)); };
  if (template_text.empty()) {  // PEFT's layout: virtual tokens, then text, 3/4 scored
    for (int k = 0; k < n_virtual; ++k) append({virtual_slot(k)}, false);
    for (int32_t id : input()) append({id}, rng() % 4 != 0);
    return;
  }
  int next_slot = 0;
  std::string literal;
  auto flush_literal = [&]() {
    const std::string text = trim(literal);
    if (!text.empty()) append(tokenizer.encode(text), false);
    literal.clear();
  };
  for (size_t pos = 0; pos < template_text.size();) {
    if (template_text.compare(pos, 3, "[P:") == 0) {
      const size_t close = template_text.find(']', pos);
      if (close == std::string::npos)
        throw Error("template \"" + template_text + "\": unclosed [P:k]");
      const int k = std::atoi(template_text.substr(pos + 3, close - pos - 3).c_str());
      if (k <= 0) throw Error("template \"" + template_text + "\": bad [P:k]");
      flush_literal();
      std::vector<int32_t> slots;
      for (int i = 0; i < k; ++i) slots.push_back(virtual_slot(next_slot++));
      append(slots, false);
      pos = close + 1;
    } else if (template_text.compare(pos, 7, "{input}") == 0) {
      flush_literal();
      append(input(), false);
      pos += 7;
    } else if (template_text.compare(pos, 8, "{output}") == 0) {
      flush_literal();
      append(random_tokens(rng, vocab, 2 + (int)(rng() % 4)), true);
      pos += 8;
    } else {
      literal += template_text[pos++];
    }
  }
  flush_literal();
  if (next_slot != n_virtual)
    throw Error("template \"" + template_text + "\" places " + std::to_string(next_slot) +
                " virtual tokens, the injection has " + std::to_string(n_virtual));
  if (std::find(scored.begin(), scored.end(), true) == scored.end())
    for (size_t t = 0; t < seq.tokens.size(); ++t) scored[t] = !is_virtual(seq.tokens[t]);
}

}  // namespace

std::unique_ptr<Tokenizer> make_byte_tokenizer(int vocab_size) {
  return std::make_unique<ByteTokenizer>(vocab_size);
}

Fixture::Fixture(const Context& ctx)
    : library(host::PluginLibrary::load(ctx.plugin)),
      model(make_random_model(tiny_model_config(), ctx.seed ^ 0x7e57ull)),
      tokenizer(make_byte_tokenizer(model.config.vocab_size)),
      model_host(std::make_unique<host::ModelHost>(model, tokenizer.get(), ctx.task)),
      options(host::resolve_options(library->descriptor(), nlohmann::json::object(), ctx.sets)) {
  if (options.contains("num_tasks") && options["num_tasks"].is_number_integer())
    num_tasks = options["num_tasks"].get<int64_t>();
}

Fixture::~Fixture() = default;

std::unique_ptr<host::MethodInstance> Fixture::create(uint64_t seed) const {
  return create(seed, options);
}

std::unique_ptr<host::MethodInstance> Fixture::create(uint64_t seed,
                                                      const nlohmann::json& opts) const {
  return std::make_unique<host::MethodInstance>(library, *model_host, opts, seed);
}

Probe make_probe(const host::MethodInstance& instance, const Fixture& fixture, int batch_size,
                 std::mt19937_64& rng) {
  const host::VirtualLayout layout = instance.virtual_layout();
  const int vocab = fixture.model.config.vocab_size;
  Probe probe;
  for (int b = 0; b < batch_size; ++b) {
    Sequence seq;
    std::vector<bool> scored;
    // The decoder's virtual tokens (SEQ_2_SEQ_LM) go first: the fixture's one stack stands
    // for both, so every slot the host feeds reaches the loss.
    for (int k = 0; k < layout.decoder; ++k) {
      seq.tokens.push_back(virtual_slot(layout.input + k));
      scored.push_back(false);
    }
    lay_out(instance.template_text(), layout.input, *fixture.tokenizer, rng, vocab, seq, scored);
    // labels[t] is the target predicted from position t - 1, so position 0 is never scored.
    seq.labels.assign(seq.tokens.size(), kIgnoreLabel);
    bool any = false;
    for (size_t t = 1; t < seq.tokens.size(); ++t)
      if (scored[t] && !is_virtual(seq.tokens[t])) {
        seq.labels[t] = seq.tokens[t];
        any = true;
      }
    if (!any) seq.labels.back() = is_virtual(seq.tokens.back()) ? kIgnoreLabel : seq.tokens.back();
    probe.sequences.push_back(std::move(seq));
    if (fixture.num_tasks > 0) probe.task_ids.push_back((int64_t)(rng() % fixture.num_tasks));
  }
  return probe;
}

double probe_loss(host::MethodInstance& instance, const Model& model, const Probe& probe,
                  bool train) {
  const Injection injection = instance.forward(probe.size(), probe.task_ids, train);
  TrainingPass pass(model);
  return pass.forward(probe.sequences, injection);
}

double probe_loss_and_gradient(host::MethodInstance& instance, const Model& model,
                               const Probe& probe, bool train, Injection* injection_out) {
  instance.zero_grad();
  Injection injection = instance.forward(probe.size(), probe.task_ids, train);
  TrainingPass pass(model);
  const double loss = pass.forward(probe.sequences, injection);
  InjectionGrad grad;
  pass.backward(grad);
  instance.backward(probe.size(), probe.task_ids, grad);
  if (injection_out) *injection_out = std::move(injection);
  return loss;
}

std::vector<float> flat_values(const host::MethodInstance& instance) {
  std::vector<float> values;
  for (const auto& p : instance.parameters())
    values.insert(values.end(), p.value, p.value + p.numel);
  return values;
}

std::vector<float> flat_grads(const host::MethodInstance& instance) {
  std::vector<float> grads;
  for (const auto& p : instance.parameters()) grads.insert(grads.end(), p.grad, p.grad + p.numel);
  return grads;
}

void set_flat_values(host::MethodInstance& instance, const std::vector<float>& values) {
  size_t at = 0;
  for (const auto& p : instance.parameters()) {
    if (at + p.numel > values.size()) throw Error("set_flat_values: too few values");
    std::memcpy(p.value, values.data() + at, p.numel * sizeof(float));
    at += p.numel;
  }
}

bool all_finite(const float* data, size_t n) {
  for (size_t i = 0; i < n; ++i)
    if (!std::isfinite(data[i])) return false;
  return true;
}

bool all_finite(const Injection& injection) {
  return all_finite(injection.virtual_tokens.data(), injection.virtual_tokens.size()) &&
         all_finite(injection.prefix.data(), injection.prefix.size());
}

bool same_bytes(const float* a, const float* b, size_t n) {
  return n == 0 || std::memcmp(a, b, n * sizeof(float)) == 0;
}

bool bit_identical(const Injection& a, const Injection& b) {
  return a.virtual_tokens.shape() == b.virtual_tokens.shape() &&
         a.prefix.shape() == b.prefix.shape() &&
         same_bytes(a.virtual_tokens.data(), b.virtual_tokens.data(), a.virtual_tokens.size()) &&
         same_bytes(a.prefix.data(), b.prefix.data(), a.prefix.size());
}

double max_relative_difference(const Injection& a, const Injection& b) {
  if (a.virtual_tokens.shape() != b.virtual_tokens.shape() || a.prefix.shape() != b.prefix.shape())
    return INFINITY;
  double diff = 0.0, scale = 0.0;
  auto scan = [&](const float* x, const float* y, size_t n) {
    for (size_t i = 0; i < n; ++i) {
      diff = std::max(diff, std::fabs((double)x[i] - (double)y[i]));
      scale = std::max(scale, std::fabs((double)y[i]));
    }
  };
  scan(a.virtual_tokens.data(), b.virtual_tokens.data(), a.virtual_tokens.size());
  scan(a.prefix.data(), b.prefix.data(), a.prefix.size());
  if (std::isnan(diff)) return INFINITY;
  return diff / std::max(scale, 1e-30);
}

std::string describe_shapes(const Injection& injection) {
  auto shape = [](const auto& t) {
    std::string s = "[";
    for (size_t i = 0; i < t.dimension(); ++i) s += (i ? ", " : "") + std::to_string(t.shape()[i]);
    return s + "]";
  };
  return "virtual tokens " + shape(injection.virtual_tokens) + ", prefix " +
         shape(injection.prefix);
}

std::string sci(double value) {
  char text[32];
  std::snprintf(text, sizeof text, "%.3g", value);
  return text;
}

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string pattern = std::string(base && *base ? base : "/tmp") + "/prompthost-validate-XXXXXX";
  if (!mkdtemp(pattern.data())) throw Error("cannot create a temporary folder " + pattern);
  path_ = pattern;
}

TempDir::~TempDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

AdapterSpec adapter_spec(const host::MethodInstance& instance) {
  ph_method* table = instance.table();
  const ph_injection_spec* spec = table->injection(table);
  AdapterSpec a;
  if (spec && PH_HAS(spec, ph_injection_spec, adapter_layers)) {
    a.adapter_len = spec->adapter_len;
    a.adapter_layers = spec->adapter_layers;
  }
  return a;
}

DirectionalDifference directional_difference(const std::function<double(double)>& loss_along,
                                             double analytic) {
  constexpr double kSteps[] = {1e-2, 1e-3};
  DirectionalDifference best;
  best.analytic = analytic;
  best.error = INFINITY;
  for (double step : kSteps) {
    const double fd = (loss_along(step) - loss_along(-step)) / (2 * step);
    const double error = std::fabs(fd - analytic);
    if (error < best.error) best.finite_difference = fd, best.error = error, best.step = step;
  }
  return best;
}

std::string describe(const DirectionalDifference& d, double tolerance) {
  return "finite difference " + sci(d.finite_difference) + " (step " + sci(d.step) +
         "), analytic " + sci(d.analytic) + ", error " + sci(d.error) + " (tolerance " +
         sci(tolerance) + ")";
}

void check_directions(const std::vector<double>& grad, int random_directions, std::mt19937_64& rng,
                      const std::function<double(const std::vector<double>&, double)>& loss_at,
                      const std::string& what, Report& report) {
  auto norm = [](const std::vector<double>& v) {
    double s = 0.0;
    for (double x : v) s += x * x;
    return std::sqrt(s);
  };
  std::vector<std::vector<double>> directions{grad};
  std::normal_distribution<double> normal;
  for (int k = 0; k < random_directions; ++k) {
    std::vector<double> u(grad.size());
    for (double& x : u) x = normal(rng);
    directions.push_back(u);
  }
  const double tolerance = kFdRelativeTolerance * norm(grad) + kFdAbsoluteTolerance;
  for (size_t k = 0; k < directions.size(); ++k) {
    std::vector<double>& u = directions[k];
    const double un = norm(u);
    if (un == 0.0) continue;  // a zero gradient: the random directions still check it
    for (double& x : u) x /= un;
    double analytic = 0.0;
    for (size_t i = 0; i < u.size(); ++i) analytic += grad[i] * u[i];
    const DirectionalDifference d =
        directional_difference([&](double step) { return loss_at(u, step); }, analytic);
    const std::string line =
        (k == 0 ? std::string("along the gradient") : "random direction " + std::to_string(k)) +
        ": " + describe(d, tolerance);
    require(d.error <= tolerance, what + " wrong " + line);
    report.note(what + " " + line);
  }
}

}  // namespace ph::validate
