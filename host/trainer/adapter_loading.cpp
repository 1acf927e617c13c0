#include "host/trainer/adapter_loading.h"

#include <filesystem>

#include "host/plugin/method_options.h"
#include "host/plugin/plugin_discovery.h"
#include "models/common/error.h"

namespace ph::trainer {

namespace {

std::shared_ptr<host::PluginLibrary> plugin_for(const AdapterInfo& a,
                                                const std::vector<std::string>& plugin_paths) {
  if (!a.plugin.empty()) {
    const std::string where =
        (std::filesystem::path(a.dir) / kAdapterInfoFile).string() + ": field \"plugin\"";
    return host::find_named_plugin(a.plugin, where, plugin_paths);
  }
  const std::string peft_type = a.peft_config["peft_type"].get<std::string>();
  std::string seen;
  for (const auto& p : host::list_plugins(plugin_paths)) {
    if (!p.library) continue;
    if (p.library->descriptor().peft_type == peft_type) return p.library;
    seen += std::string(seen.empty() ? "" : ", ") + p.library->descriptor().peft_type;
  }
  throw Error(a.dir + ": no plugin handles peft_type " + peft_type + " (found: " + seen + ")");
}

}  // namespace

std::string adapter_base_model(const AdapterInfo& info) {
  const auto& base = info.peft_config.value("base_model_name_or_path", nlohmann::json());
  if (base.is_string() && std::filesystem::exists(base.get<std::string>()))
    return base.get<std::string>();
  return "";
}

LoadedAdapter open_adapter(const std::string& dir, const host::ModelHost& model_host,
                           const std::vector<std::string>& plugin_paths) {
  LoadedAdapter out;
  out.info = read_adapter_info(dir);
  const ModelConfig& mc = model_host.model().config;
  if (out.info.info.is_object() && out.info.info.contains("model"))
    check_fingerprint(out.info.info["model"], mc, dir);
  check_adapter_task(out.info, mc);
  // PEFT's own geometry fields: token_dim is the hidden size (the key/value width for a
  // prefix on a grouped-query model), num_layers the model's.
  const auto& pc = out.info.peft_config;
  if (pc.contains("num_layers") && pc["num_layers"].is_number_integer() &&
      pc["num_layers"].get<int>() != mc.n_layers)
    throw Error(dir + ": the adapter was made for a model with " + pc["num_layers"].dump() +
                " layers, this model has " + std::to_string(mc.n_layers));
  if (pc.contains("token_dim") && pc["token_dim"].is_number_integer() &&
      pc["token_dim"].get<int>() != mc.dim && pc["token_dim"].get<int>() != mc.kv_dim())
    throw Error(dir + ": the adapter was made for a model with token_dim " +
                pc["token_dim"].dump() + ", this model's hidden size is " + std::to_string(mc.dim));
  auto library = plugin_for(out.info, plugin_paths);
  // A PEFT-made adapter's config holds PEFT's base fields too: keep the declared options.
  nlohmann::json options = nlohmann::json::object();
  const auto& d = library->descriptor();
  for (uint32_t i = 0; i < d.n_options; ++i) {
    const char* name = host::option_at(d, i).name;
    if (out.info.options.contains(name)) options[name] = out.info.options[name];
  }
  try {
    options = host::resolve_options(d, options, {});
    out.method = std::make_unique<host::MethodInstance>(library, model_host, options, 0, true);
    if (mc.task == TaskType::kSeqCls) out.head = TrainedHead::of_model(model_host.model());
    load_adapter_tensors(dir, *out.method, &out.head);
  } catch (const Error& e) {
    throw Error(dir + ": " + e.what());
  }
  return out;
}

}  // namespace ph::trainer
