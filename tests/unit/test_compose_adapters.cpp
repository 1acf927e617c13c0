// `prompthost compose` (trainer::compose_cartridges): PEFT's compose_cartridge_adapters,
// on the CARTRIDGE folders PEFT itself wrote (tests/fixtures/family/adapters): the rows
// stacked, the config PEFT's rule makes, and a composed folder that loads and whose prefix
// is the inputs' prefixes one after the other.
#include <filesystem>
#include <string>
#include <vector>

#include <catch.hpp>
#include <nlohmann/json.hpp>

#include "host/plugin/method_instance.h"
#include "host/trainer/adapter_files.h"
#include "host/trainer/adapter_loading.h"
#include "host/trainer/compose_adapters.h"
#include "host/trainer/run_files.h"
#include "models/common/error.h"
#include "models/engine/engine.h"
#include "models/loader/safetensors.h"
#include "test_support.h"

namespace ph {
namespace {

namespace fs = std::filesystem;

std::string fixture(const std::string& name) {
  return test::source_path("tests/fixtures/family/adapters/" + name);
}

std::vector<float> rows_of(const std::string& dir) {
  const SafetensorsFile f((fs::path(dir) / trainer::kAdapterModelFile).string());
  const FloatTensor t = f.to_float("prompt_embeddings");
  return std::vector<float>(t.data, t.data + t.numel);
}

xt::xtensor<float, 5> prefix_of(const std::string& adapter, const host::ModelHost& model_host) {
  const auto loaded = trainer::open_adapter(adapter, model_host, {});
  return loaded.method->forward(1, {}, false).prefix;
}

TEST_CASE("compose stacks PEFT's cartridges as compose_cartridge_adapters does", "[compose]") {
  const std::string a = fixture("llama-tiny__cartridge"),
                    b = fixture("llama-tiny__cartridge_nofrozen");
  const std::string out = test::temp_dir("compose") + "/composed";
  const trainer::ComposeResult r = trainer::compose_cartridges({a, b, a}, out, false);

  const nlohmann::json ca = trainer::read_json(a + "/adapter_config.json");
  const nlohmann::json cb = trainer::read_json(b + "/adapter_config.json");
  const int na = ca["num_virtual_tokens"], nb = cb["num_virtual_tokens"];
  CHECK(r.num_virtual_tokens == 2 * na + nb);
  CHECK(r.num_frozen_tokens == ca["num_frozen_tokens"].get<int>());
  nlohmann::json want = ca;  // the first config, with the new count
  want["num_virtual_tokens"] = 2 * na + nb;
  CHECK(trainer::read_json(out + "/adapter_config.json") == want);
  CHECK_FALSE(fs::exists(out + "/prompthost_adapter.json"));  // the first was PEFT's

  std::vector<float> stacked = rows_of(a);
  for (const std::string& dir : {b, a}) {
    const std::vector<float> more = rows_of(dir);
    stacked.insert(stacked.end(), more.begin(), more.end());
  }
  CHECK(rows_of(out) == stacked);

  // Loaded by the cartridge plugin, its prefix is the inputs' along the positions.
  const Model model = load_model(test::source_path("tests/fixtures/family/models/llama-tiny"));
  const host::ModelHost model_host(model, nullptr);
  const auto pa = prefix_of(a, model_host), pb = prefix_of(b, model_host);
  const auto composed = prefix_of(out, model_host);
  REQUIRE(composed.shape(3) == (size_t)(2 * na + nb));
  const auto want_prefix = xt::concatenate(xt::xtuple(pa, pb, pa), 3);
  CHECK(composed == want_prefix);
}

TEST_CASE("compose refuses what PEFT refuses, naming the file and field", "[compose]") {
  const std::string dir = test::temp_dir("compose_errors");
  const std::string cart = fixture("llama-tiny__cartridge");
  auto refuses = [&](const std::vector<std::string>& inputs, const std::string& out,
                     const std::string& says) {
    INFO("expected an error saying: " << says);
    CHECK_THROWS_WITH(trainer::compose_cartridges(inputs, out, false),
                      Catch::Matchers::Contains(says));
  };
  refuses({cart}, dir + "/one", "at least two");
  refuses({cart, fixture("llama-tiny__cpt")}, dir + "/cpt",
          "llama-tiny__cpt/adapter_config.json: field \"peft_type\" is CPT");
  refuses({cart, fixture("gpt2-tiny__cartridge")}, dir + "/mixed",
          "gpt2-tiny__cartridge/adapter_config.json: field \"token_dim\"");
  refuses({cart, cart}, cart, "is also an input");

  // A stranger's config field of the wrong type is an error naming its file and field.
  const std::string odd = dir + "/odd";
  fs::create_directories(odd);
  fs::copy_file(cart + "/adapter_model.safetensors", odd + "/adapter_model.safetensors");
  nlohmann::json config = trainer::read_json(cart + "/adapter_config.json");
  config["num_frozen_tokens"] = "one";
  trainer::write_json_atomic(odd + "/adapter_config.json", config);
  refuses({odd, cart}, dir + "/odd-out", "odd/adapter_config.json");
  refuses({odd, cart}, dir + "/odd-out", "num_frozen_tokens");
  config["num_frozen_tokens"] = 99;  // more than the 10 rows composed
  trainer::write_json_atomic(odd + "/adapter_config.json", config);
  refuses({odd, cart}, dir + "/odd-out", "\"num_frozen_tokens\" must be in [0, 10], got 99");

  // An adapter already in --output stays unless --overwrite.
  trainer::compose_cartridges({cart, cart}, dir + "/kept", false);
  refuses({cart, cart, cart}, dir + "/kept", "--overwrite");
  CHECK(trainer::compose_cartridges({cart, cart, cart}, dir + "/kept", true).num_virtual_tokens ==
        15);
}

TEST_CASE("a PromptHost cartridge composes with its options and provenance", "[compose]") {
  const std::string dir = test::temp_dir("compose_info");
  const std::string a = dir + "/a";
  fs::create_directories(a);
  const std::string cart = fixture("llama-tiny__cartridge");
  for (const char* f : {"adapter_config.json", "adapter_model.safetensors"})
    fs::copy_file(cart + "/" + f, a + "/" + f);
  const nlohmann::json model = {{"arch", "llama"}, {"dim", 32}};
  trainer::write_json_atomic(
      a + "/prompthost_adapter.json",
      {{"plugin", "cartridge"},
       {"options", {{"num_virtual_tokens", 5}, {"init_text_file", "corpus.txt"}}},
       {"model", model}});
  trainer::compose_cartridges({a, cart}, dir + "/out", false);
  const nlohmann::json info = trainer::read_json(dir + "/out/prompthost_adapter.json");
  CHECK(info["plugin"] == "cartridge");
  CHECK(info["options"]["num_virtual_tokens"] == 10);
  CHECK(info["options"]["init_text_file"].is_null());
  CHECK(info["composed_from"] == nlohmann::json::array({a, cart}));

  // Two PromptHost cartridges of different models do not compose.
  const std::string b = dir + "/b";
  fs::create_directories(b);
  for (const char* f : {"adapter_config.json", "adapter_model.safetensors"})
    fs::copy_file(cart + "/" + f, b + "/" + f);
  trainer::write_json_atomic(
      b + "/prompthost_adapter.json",
      {{"plugin", "cartridge"}, {"model", {{"arch", "llama"}, {"dim", 64}}}});
  CHECK_THROWS_WITH(trainer::compose_cartridges({a, b}, dir + "/bad", false),
                    Catch::Matchers::Contains("b/prompthost_adapter.json: field \"model\""));
}

}  // namespace
}  // namespace ph
