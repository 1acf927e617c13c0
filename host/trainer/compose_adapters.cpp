#include "host/trainer/compose_adapters.h"

#include <cstdint>
#include <filesystem>
#include <vector>

#include <nlohmann/json.hpp>

#include "host/trainer/adapter_files.h"
#include "host/trainer/json_fields.h"
#include "host/trainer/run_files.h"
#include "models/common/error.h"
#include "models/loader/safetensors.h"

namespace ph::trainer {

namespace fs = std::filesystem;

namespace {

// What PEFT compares between the configs (compose_cartridge_adapters).
const char* const kMustAgree[] = {"task_type", "token_dim", "num_layers", "num_attention_heads",
                                  "num_transformer_submodules"};

std::string config_path(const std::string& dir) {
  return (fs::path(dir) / kAdapterConfigFile).string();
}

struct Rows {
  int64_t n = 0, width = 0;
  std::vector<float> values;
};

Rows read_prompt_embeddings(const std::string& dir) {
  const SafetensorsFile file((fs::path(dir) / kAdapterModelFile).string());
  const TensorInfo& t = file.info("prompt_embeddings");
  if (t.shape.size() != 2 || t.shape[0] < 1)
    throw Error(file.path() + ": tensor 'prompt_embeddings' is " + shape_string(t.shape) +
                ", expected [num_virtual_tokens, num_layers * 2 * token_dim]");
  const FloatTensor f = file.to_float(t);
  return {t.shape[0], t.shape[1], std::vector<float>(f.data, f.data + f.numel)};
}

void check_same_model(const AdapterInfo& first, const AdapterInfo& other) {
  if (!first.info.is_object() || !other.info.is_object()) return;  // a PEFT-made one says not
  const nlohmann::json a = first.info.value("model", nlohmann::json()),
                       b = other.info.value("model", nlohmann::json());
  if (!a.is_null() && !b.is_null() && a != b)
    throw Error((fs::path(other.dir) / kAdapterInfoFile).string() + ": field \"model\" is " +
                b.dump() + ", but " + first.dir + " was made for " + a.dump() +
                ": cartridges of different models cannot be composed");
}

void prepare_output(const std::string& output, bool overwrite) {
  if (fs::exists(output) && !fs::is_directory(output))
    throw Error(output + ": exists and is not a folder");
  if (fs::exists(config_path(output)) && !overwrite)
    throw Error(output +
                ": already holds an adapter (adapter_config.json); pass --overwrite to "
                "replace it");
  fs::create_directories(output);
  for (const char* stale : {kTrainingStateFile, kTrainerStateFile, kAdapterInfoFile})
    fs::remove(fs::path(output) / stale);
}

}  // namespace

ComposeResult compose_cartridges(const std::vector<std::string>& inputs, const std::string& output,
                                 bool overwrite) {
  if (inputs.size() < 2) throw Error("compose: give at least two cartridge adapters");
  std::vector<AdapterInfo> infos;
  for (const std::string& dir : inputs) {
    infos.push_back(read_adapter_info(dir));
    const std::string type = infos.back().peft_config["peft_type"];
    if (type != "CARTRIDGE")
      throw Error(config_path(dir) + ": field \"peft_type\" is " + type +
                  ": only CARTRIDGE adapters compose by concatenation");
    if (fs::exists(output) && fs::equivalent(dir, output))
      throw Error(output + ": is also an input; write the composition to a new folder");
  }
  const nlohmann::json& base = infos.front().peft_config;
  for (size_t i = 1; i < infos.size(); ++i) {
    for (const char* key : kMustAgree) {
      const nlohmann::json mine = infos[i].peft_config.value(key, nlohmann::json());
      if (mine != base.value(key, nlohmann::json()))
        throw Error(config_path(inputs[i]) + ": field \"" + key + "\" is " + mine.dump() +
                    ", but " + config_path(inputs[0]) + " has " +
                    base.value(key, nlohmann::json()).dump());
    }
    check_same_model(infos.front(), infos[i]);
  }

  Rows all;
  for (size_t i = 0; i < inputs.size(); ++i) {
    Rows r = read_prompt_embeddings(inputs[i]);
    if (i > 0 && r.width != all.width)
      throw Error(inputs[i] + ": prompt_embeddings rows have " + std::to_string(r.width) +
                  " values, " + inputs[0] + "'s " + std::to_string(all.width));
    all.width = r.width;
    all.n += r.n;
    all.values.insert(all.values.end(), r.values.begin(), r.values.end());
  }

  ComposeResult result;
  result.num_virtual_tokens = (int)all.n;
  // PEFT's default (1) when absent; a field of a stranger's file, so checked.
  const JsonPlace place{config_path(inputs[0]), ""};
  result.num_frozen_tokens = json_field_or<int>(base, "num_frozen_tokens", 1, place);
  if (result.num_frozen_tokens < 0 || result.num_frozen_tokens > result.num_virtual_tokens)
    (place / "num_frozen_tokens")
        .fail("must be in [0, " + std::to_string(result.num_virtual_tokens) + "], got " +
              std::to_string(result.num_frozen_tokens));
  nlohmann::json config = base;
  config["num_virtual_tokens"] = result.num_virtual_tokens;
  config["num_frozen_tokens"] = result.num_frozen_tokens;

  prepare_output(output, overwrite);
  write_safetensors((fs::path(output) / kAdapterModelFile).string(),
                    {f32_tensor("prompt_embeddings", {all.n, all.width}, all.values.data())},
                    {{"format", "pt"}});
  write_json_atomic(config_path(output), config);
  if (infos.front().info.is_object()) {
    nlohmann::json info = infos.front().info;
    info["options"]["num_virtual_tokens"] = result.num_virtual_tokens;
    // The texts that initialised or taught the inputs do not describe the composition.
    for (const char* key : {"init_text", "init_text_file"})
      if (info["options"].contains(key)) info["options"][key] = nullptr;
    info["composed_from"] = inputs;
    write_json_atomic((fs::path(output) / kAdapterInfoFile).string(), info);
  }
  return result;
}

}  // namespace ph::trainer
