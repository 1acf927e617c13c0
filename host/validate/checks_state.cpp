// State: parameters saved by the host and loaded into another instance, determinism under
// a seed, and the PEFT export loaded back.
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "host/validate/check.h"
#include "host/validate/fixture.h"
#include "models/loader/safetensors.h"

namespace ph::validate {
namespace {

// Exported tensors must reproduce the forward output to this relative precision.
constexpr double kExportTolerance = 1e-6;

void save_parameters(const host::MethodInstance& instance, const std::string& path) {
  std::vector<TensorToWrite> tensors;
  for (const auto& p : instance.parameters())
    tensors.push_back(f32_tensor(p.name, p.shape, p.value));
  write_safetensors(path, tensors);
}

void load_parameters(host::MethodInstance& instance, const std::string& path) {
  const SafetensorsFile file(path);
  const auto params = instance.parameters();
  require(file.tensors().size() == params.size(),
          "the saved file has " + std::to_string(file.tensors().size()) +
              " tensors, the new instance " + std::to_string(params.size()) + " parameters");
  for (const auto& p : params) {
    const TensorInfo* info = file.find(p.name);
    require(info != nullptr,
            "the new instance has a parameter \"" + p.name + "\" the first one did not save");
    require(info->shape == p.shape, "parameter \"" + p.name + "\" has shape " +
                                        shape_string(p.shape) + " in the new instance, " +
                                        shape_string(info->shape) + " in the saved file");
    const FloatTensor t = file.to_float(*info);
    std::memcpy(p.value, t.data, p.numel * sizeof(float));
  }
}

std::string file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

bool same_parameters(const host::MethodInstance& a, const host::MethodInstance& b,
                     std::string* first_difference) {
  const auto pa = a.parameters(), pb = b.parameters();
  if (pa.size() != pb.size()) {
    *first_difference = "different parameter counts";
    return false;
  }
  for (size_t i = 0; i < pa.size(); ++i) {
    if (pa[i].name != pb[i].name || pa[i].shape != pb[i].shape ||
        !same_bytes(pa[i].value, pb[i].value, pa[i].numel)) {
      *first_difference = "parameter \"" + pa[i].name + "\"";
      return false;
    }
  }
  return true;
}

std::string output_difference(const Injection& a, const Injection& b) {
  return describe_shapes(a) + " vs " + describe_shapes(b) + ", max relative difference " +
         sci(max_relative_difference(a, b));
}

}  // namespace

void check_state_round_trip(const Context& ctx, Report& report) {
  Fixture f(ctx);
  auto original = f.create(ctx.seed);
  const TempDir dir;
  const std::string first = dir.path() + "/first.safetensors";
  const std::string second = dir.path() + "/second.safetensors";
  save_parameters(*original, first);

  auto restored = f.create(ctx.seed + 1);
  load_parameters(*restored, first);
  save_parameters(*restored, second);
  const std::string a = file_bytes(first), b = file_bytes(second);
  require(a == b, "the parameters saved again after loading differ from the saved file (" +
                      std::to_string(a.size()) + " vs " + std::to_string(b.size()) + " bytes)");

  std::mt19937_64 rng(ctx.seed);
  const Probe probe = make_probe(*original, f, 3, rng);
  const Injection out_a = original->forward(probe.size(), probe.task_ids, false);
  const Injection out_b = restored->forward(probe.size(), probe.task_ids, false);
  require(bit_identical(out_a, out_b),
          "an instance given the saved parameters (created with another seed) computes a "
          "different injection: state outside the parameters? " +
              output_difference(out_b, out_a));
  report.note("saved " + std::to_string(a.size()) +
              " bytes of safetensors; re-saved "
              "byte-identical; forward output bit-identical");
}

void check_determinism(const Context& ctx, Report& report) {
  Fixture f(ctx);
  auto a = f.create(ctx.seed);
  auto b = f.create(ctx.seed);
  std::string where;
  require(same_parameters(*a, *b, &where),
          "two instances created with the same seed differ in " + where);

  // Interleaved calls on the two instances: no hidden shared state.
  std::mt19937_64 rng(ctx.seed);
  const Probe probe = make_probe(*a, f, 3, rng);
  const Injection first_a = a->forward(probe.size(), probe.task_ids, false);
  const Injection first_b = b->forward(probe.size(), probe.task_ids, false);
  require(bit_identical(first_a, first_b),
          "same seed, different forward outputs: " + output_difference(first_b, first_a));
  const Injection again_a = a->forward(probe.size(), probe.task_ids, false);
  require(bit_identical(first_a, again_a),
          "two eval-mode forwards of one instance differ: " + output_difference(again_a, first_a));
  probe_loss_and_gradient(*a, f.model, probe);
  probe_loss_and_gradient(*b, f.model, probe);
  const auto grads_a = flat_grads(*a), grads_b = flat_grads(*b);
  require(grads_a.size() == grads_b.size() &&
              same_bytes(grads_a.data(), grads_b.data(), grads_a.size()),
          "same seed, different parameter gradients");

  auto c = f.create(ctx.seed + 1);
  if (same_parameters(*a, *c, &where))
    report.note("seed " + std::to_string(ctx.seed + 1) + " gives the same parameters as seed " +
                std::to_string(ctx.seed) + ": no randomly initialised parameter");
  else
    report.note("another seed gives other parameters (first: " + where + ")");
  report.note("same seed: bit-identical parameters, forward outputs and gradients");
}

void check_export(const Context& ctx, Report& report) {
  Fixture f(ctx);
  auto original = f.create(ctx.seed);
  const auto adapter = original->export_adapter();
  require(!adapter.tensors.empty(), "export_adapter exported no tensor");
  for (const auto& [name, tensor] : adapter.tensors) {
    const auto& [shape, values] = tensor;
    size_t numel = 1;
    for (int64_t d : shape) numel *= (size_t)d;
    require(numel == values.size(), "exported tensor \"" + name + "\": shape " +
                                        shape_string(shape) + " but " +
                                        std::to_string(values.size()) + " values");
    require(all_finite(values.data(), values.size()),
            "exported tensor \"" + name + "\" has non-finite values");
  }
  // The host writes adapter_config.json as its own fields (peft_type from the descriptor)
  // updated with the method's: the method may add fields, but not change peft_type.
  const std::string peft_type = f.library->descriptor().peft_type;
  require(adapter.config.is_object(), "the exported config is not a JSON object");
  if (adapter.config.contains("peft_type"))
    require(adapter.config["peft_type"] == peft_type,
            "the exported config sets peft_type " + adapter.config["peft_type"].dump() +
                ", the descriptor says \"" + peft_type + "\"");
  // A method that writes PEFT's task fields writes those of the task type it was told.
  const std::string task = task_type_name(ctx.task);
  if (adapter.config.contains("task_type"))
    require(adapter.config["task_type"] == task, "the exported config says task_type " +
                                                     adapter.config["task_type"].dump() +
                                                     ", the model host said " + task);
  const int submodules = f.model_host->info().num_transformer_submodules;
  if (adapter.config.contains("num_transformer_submodules"))
    require(adapter.config["num_transformer_submodules"] == submodules,
            "the exported config says num_transformer_submodules " +
                adapter.config["num_transformer_submodules"].dump() + ", PEFT's for " + task +
                " is " + std::to_string(submodules));
  host::MethodInstance::Adapter written = adapter;
  written.config = {{"peft_type", peft_type}};
  written.config.update(adapter.config);

  // Parameters the export copies verbatim (same size, same bits): after the import their
  // views must show the imported values. A plugin that reallocates a parameter's memory
  // leaves the host's views dangling (they must stay valid until destroy).
  std::vector<std::pair<size_t, std::string>> copies;  // parameter index, tensor name
  const auto exported_from = original->parameters();
  for (size_t i = 0; i < exported_from.size(); ++i)
    for (const auto& [name, tensor] : adapter.tensors)
      if (tensor.second.size() == exported_from[i].numel &&
          same_bytes(tensor.second.data(), exported_from[i].value, exported_from[i].numel)) {
        copies.emplace_back(i, name);
        break;
      }

  auto imported = f.create(ctx.seed + 1);
  imported->import_adapter(written);
  const auto imported_into = imported->parameters();
  for (const auto& [i, name] : copies) {
    const auto& values = adapter.tensors.at(name).second;
    if (!same_bytes(values.data(), imported_into[i].value, values.size()))
      throw CheckFailed("after import_adapter, parameter \"" + imported_into[i].name +
                        "\" does not show the imported \"" + name +
                        "\" through its view: did the plugin reallocate the parameter's memory? "
                        "(parameter views must stay valid until destroy)");
  }
  std::mt19937_64 rng(ctx.seed);
  const Probe probe = make_probe(*original, f, 3, rng);
  const Injection out_a = original->forward(probe.size(), probe.task_ids, false);
  const Injection out_b = imported->forward(probe.size(), probe.task_ids, false);
  const bool identical = bit_identical(out_a, out_b);
  const double difference = max_relative_difference(out_b, out_a);
  require(identical || difference <= kExportTolerance,
          "an instance (another seed) that imported the export computes a different injection: " +
              output_difference(out_b, out_a) + " (tolerance " + sci(kExportTolerance) + ")");

  // An adapter without its tensors must be refused, not half-loaded.
  host::MethodInstance::Adapter empty;
  empty.config = written.config;
  bool refused = false;
  try {
    imported->import_adapter(empty);
  } catch (const std::exception&) {
    refused = true;
  }
  require(refused, "import_adapter accepts an adapter with no tensors");

  std::string names;
  for (const auto& [name, tensor] : adapter.tensors)
    names += (names.empty() ? "" : ", ") + name + " " + shape_string(tensor.first);
  report.note("exported " + names + "; config " + written.config.dump());
  report.note(identical ? std::string("imported forward output bit-identical")
                        : "imported forward output within " + sci(difference) + " relative");
}

}  // namespace ph::validate
