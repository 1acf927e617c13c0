// Training: the parameters an instance exposes, its gradients against finite differences
// of the frozen model's loss, and forward/backward on random batches.
#include <cmath>
#include <set>
#include <string>
#include <vector>

#include "host/validate/check.h"
#include "host/validate/fixture.h"

namespace ph::validate {
namespace {

// Finite differences (float32 model and parameters): a central difference of the loss
// along a unit direction u must equal <grad, u> within kRelativeTolerance * |grad|
// (+ kAbsoluteTolerance). Along the gradient itself the difference is the most sensitive;
// two random directions catch a gradient that is right only in size. Both step sizes are
// tried, the smaller error counts: a large step suffers from curvature, a small one from
// float32 rounding.
constexpr double kSteps[] = {1e-2, 1e-3};
constexpr double kRelativeTolerance = 1e-2;
constexpr double kAbsoluteTolerance = 1e-6;
constexpr int kRandomDirections = 2;
// Two backward calls without zeroing must give twice the gradient of one, to this
// relative precision (float32 accumulation).
constexpr double kAccumulationTolerance = 1e-5;

double norm(const std::vector<double>& v) {
  double s = 0.0;
  for (double x : v) s += x * x;
  return std::sqrt(s);
}

// The loss at parameters + step * u (the parameters are restored afterwards).
double loss_at(host::MethodInstance& instance, const Fixture& f, const Probe& probe,
               const std::vector<float>& base, const std::vector<double>& u, double step) {
  std::vector<float> moved(base.size());
  for (size_t i = 0; i < base.size(); ++i) moved[i] = (float)((double)base[i] + step * u[i]);
  set_flat_values(instance, moved);
  const double loss = probe_loss(instance, f.model, probe, false);
  set_flat_values(instance, base);
  return loss;
}

}  // namespace

void check_parameters(const Context& ctx, Report& report) {
  Fixture f(ctx);
  auto instance = f.create(ctx.seed);
  const auto params = instance->parameters();
  require(!params.empty(), "the instance has no parameters");
  std::set<std::string> names;
  for (const auto& p : params) {
    require(!p.name.empty(), "a parameter has an empty name");
    require(names.insert(p.name).second, "parameter name \"" + p.name + "\" is used twice");
    require(!p.shape.empty(), "parameter \"" + p.name + "\" has rank 0");
    for (int64_t dim : p.shape)
      require(dim > 0, "parameter \"" + p.name + "\" has a non-positive dimension");
    require(p.value && p.grad, "parameter \"" + p.name + "\" has no value or grad tensor");
    require(all_finite(p.value, p.numel), "parameter \"" + p.name + "\" has non-finite values");
  }

  const ph_injection_spec spec = instance->injection();
  require(spec.n_virtual >= 0 && spec.n_prefix >= 0,
          "negative n_virtual (" + std::to_string(spec.n_virtual) + ") or n_prefix (" +
              std::to_string(spec.n_prefix) + ")");
  require(spec.n_virtual > 0 || spec.n_prefix > 0 || spec.adapter_layers > 0,
          "the injection spec injects nothing (n_virtual = n_prefix = adapter_layers = 0)");
  require(spec.per_example == 0 || spec.per_example == 1,
          "per_example is " + std::to_string(spec.per_example) + ", not 0 or 1");
  require(spec.n_virtual + spec.n_prefix < f.model.config.max_positions,
          "the injection does not fit the model's context");

  // The host builds the injection tensors from the spec: one forward must fill them.
  std::mt19937_64 rng(ctx.seed);
  const Probe probe = make_probe(*instance, f, 2, rng);  // throws on a bad template
  const Injection injection = instance->forward(probe.size(), probe.task_ids, false);
  require(all_finite(injection),
          "forward wrote non-finite values (" + describe_shapes(injection) + ")");
  report.note(std::to_string(params.size()) + " parameters, " +
              std::to_string(instance->parameter_count_total()) + " values; n_virtual " +
              std::to_string(spec.n_virtual) + (spec.per_example ? " per example" : " shared") +
              ", n_prefix " + std::to_string(spec.n_prefix) +
              (instance->template_text().empty()
                   ? ""
                   : ", template \"" + instance->template_text() + "\""));
}

void check_gradient(const Context& ctx, Report& report) {
  Fixture f(ctx);
  auto instance = f.create(ctx.seed);
  std::mt19937_64 rng(ctx.seed);
  const Probe probe = make_probe(*instance, f, 3, rng);

  const double loss = probe_loss_and_gradient(*instance, f.model, probe);
  require(std::isfinite(loss), "the loss is not finite");
  const std::vector<float> grad_f = flat_grads(*instance);
  require(all_finite(grad_f.data(), grad_f.size()), "the parameter gradients are not finite");
  const std::vector<double> grad(grad_f.begin(), grad_f.end());
  const double grad_norm = norm(grad);
  require(grad_norm > 0.0, "every parameter gradient is zero (loss " + sci(loss) + ")");

  const ModelConfig& c = f.model.config;
  report.note("random llama (" + std::to_string(c.n_layers) + " layers, dim " +
              std::to_string(c.dim) + ", " + std::to_string(c.n_heads) + " heads over " +
              std::to_string(c.n_kv_heads) + " kv heads), batch of 3, eval mode; loss " +
              sci(loss) + ", |grad| " + sci(grad_norm));
  report.note(
      "central differences, steps 1e-2 and 1e-3 (best counts), tolerance |fd - grad.u| <= " +
      sci(kRelativeTolerance) + " |grad| + " + sci(kAbsoluteTolerance));

  const std::vector<float> base = flat_values(*instance);
  std::vector<std::vector<double>> directions;
  directions.push_back(grad);
  std::normal_distribution<double> normal;
  for (int k = 0; k < kRandomDirections; ++k) {
    std::vector<double> u(grad.size());
    for (double& x : u) x = normal(rng);
    directions.push_back(u);
  }
  const double tolerance = kRelativeTolerance * grad_norm + kAbsoluteTolerance;
  for (size_t k = 0; k < directions.size(); ++k) {
    std::vector<double>& u = directions[k];
    const double un = norm(u);
    for (double& x : u) x /= un;
    double analytic = 0.0;
    for (size_t i = 0; i < u.size(); ++i) analytic += grad[i] * u[i];
    double best_fd = 0.0, best_error = INFINITY, best_step = 0.0;
    for (double step : kSteps) {
      const double fd = (loss_at(*instance, f, probe, base, u, step) -
                         loss_at(*instance, f, probe, base, u, -step)) /
                        (2 * step);
      const double error = std::fabs(fd - analytic);
      if (error < best_error) best_fd = fd, best_error = error, best_step = step;
    }
    const std::string line =
        std::string(k == 0 ? "along the gradient" : "random direction " + std::to_string(k)) +
        ": finite difference " + sci(best_fd) + " (step " + sci(best_step) + "), analytic " +
        sci(analytic) + ", error " + sci(best_error) + " (tolerance " + sci(tolerance) + ")";
    require(best_error <= tolerance, "gradient wrong " + line);
    report.note(line);
  }

  // Accumulation: a second backward (no zeroing) adds the same gradient again.
  instance->zero_grad();
  Injection injection = instance->forward(probe.size(), probe.task_ids, false);
  TrainingPass pass(f.model);
  pass.forward(probe.sequences, injection);
  InjectionGrad injection_grad;
  pass.backward(injection_grad);
  instance->backward(probe.size(), probe.task_ids, injection_grad);
  const std::vector<float> once = flat_grads(*instance);
  instance->backward(probe.size(), probe.task_ids, injection_grad);
  const std::vector<float> twice = flat_grads(*instance);
  double worst = 0.0, scale = 0.0;
  for (size_t i = 0; i < once.size(); ++i) {
    worst = std::max(worst, std::fabs((double)twice[i] - 2.0 * once[i]));
    scale = std::max(scale, std::fabs(2.0 * once[i]));
  }
  require(worst <= kAccumulationTolerance * scale,
          "backward does not accumulate: after two calls the gradient differs from twice one "
          "call by up to " +
              sci(worst) + " (largest value " + sci(scale) + ")");
  report.note("two backward calls accumulate 2x (max deviation " + sci(worst) + ", tolerance " +
              sci(kAccumulationTolerance) + " relative)");
}

void check_random_batches(const Context& ctx, Report& report) {
  constexpr int kSteps = 10;
  Fixture f(ctx);
  auto instance = f.create(ctx.seed);
  std::mt19937_64 rng(ctx.seed + 11);
  std::string sizes;
  for (int step = 0; step < kSteps; ++step) {
    const int batch_size = 1 + (int)(rng() % 5);
    const bool train = step % 2 == 0;  // dropout on every other step
    const Probe probe = make_probe(*instance, f, batch_size, rng);
    Injection injection;
    const double loss = probe_loss_and_gradient(*instance, f.model, probe, train, &injection);
    const std::string where = "step " + std::to_string(step + 1) + " (batch of " +
                              std::to_string(batch_size) + (train ? ", train" : ", eval") + ")";
    require(all_finite(injection), where + ": forward wrote non-finite values");
    require(std::isfinite(loss), where + ": the loss is not finite");
    const auto grads = flat_grads(*instance);
    require(all_finite(grads.data(), grads.size()), where + ": non-finite parameter gradients");
    sizes += (step ? " " : "") + std::to_string(batch_size);
  }
  report.note(std::to_string(kSteps) + " forward/backward steps, batch sizes " + sizes +
              (f.num_tasks > 0 ? ", task ids in [0, " + std::to_string(f.num_tasks) + ")" : ""));
}

}  // namespace ph::validate
