// Option declarations and values: resolve_options over every type (JSON config and
// --set text), nullable options, inclusive bounds, unknown keys, and the checks of the
// declarations themselves. Descriptors are built here, no plugin is loaded.
#include <catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include <prompthost_sdk/sdk/options.hpp>

#include "host/plugin/method_options.h"
#include "models/common/error.h"
#include "test_support.h"

using json = nlohmann::json;
using ph::host::check_option_declarations;
using ph::host::describe_options;
using ph::host::resolve_options;
using ph::test::error_of;

namespace {

const char* const kInits[] = {"RANDOM", "TEXT", "SAMPLE_VOCAB", nullptr};

std::vector<ph_option> all_types() {
  return {
      ph::sdk::int_option("num_virtual_tokens", "20", 1, 4096, "virtual tokens"),
      ph::sdk::float_option("dropout", "0.1", 0, 1, "dropout probability"),
      ph::sdk::bool_option("per_example", "false", "one set per example"),
      ph::sdk::string_option("init_text", "null", "text to initialise from"),
      ph::sdk::choice_option("init", "\"RANDOM\"", kInits, "initialisation"),
      ph::sdk::int_option("encoder_hidden_size", "null", 1, 1e6, "MLP width", /*nullable=*/true),
  };
}

ph_method_descriptor describe(const ph_option* options, uint32_t n, const char* name,
                              const char* description) {
  ph_method_descriptor d{};  // no task types declared
  d.struct_size = sizeof d;
  d.name = name;
  d.peft_type = "PROMPT_TUNING";
  d.version = "1.0.0";
  d.description = description;
  d.options = options;
  d.n_options = n;
  return d;
}

ph_method_descriptor describe(const std::vector<ph_option>& options, const char* name = "demo") {
  return describe(options.data(), (uint32_t)options.size(), name, "test");
}

}  // namespace

TEST_CASE("defaults fill every option, typed and normalised") {
  const auto options = all_types();
  const auto d = describe(options);
  const json r = resolve_options(d, json::object(), {});
  CHECK(r.size() == options.size());
  CHECK(r.at("num_virtual_tokens") == 20);
  CHECK(r.at("num_virtual_tokens").is_number_integer());
  CHECK(r.at("dropout").get<double>() == 0.1);
  CHECK(r.at("per_example") == false);
  CHECK(r.at("init_text").is_null());
  CHECK(r.at("init") == "RANDOM");
  CHECK(r.at("encoder_hidden_size").is_null());
  // A null config is the same as an empty one.
  CHECK(resolve_options(d, json(), {}) == r);
}

TEST_CASE("config values overlay defaults and --set overlays the config") {
  const auto options = all_types();
  const auto d = describe(options);
  const json config = {{"num_virtual_tokens", 8},
                       {"init", "TEXT"},
                       {"init_text", "hello"},
                       {"dropout", 0},
                       {"encoder_hidden_size", 64}};
  const json r =
      resolve_options(d, config,
                      {"num_virtual_tokens=12", "per_example=1", "dropout=0.25",
                       "init=SAMPLE_VOCAB", "init_text=a=b c", "encoder_hidden_size=null"});
  CHECK(r.at("num_virtual_tokens") == 12);
  CHECK(r.at("per_example") == true);
  CHECK(r.at("dropout").get<double>() == 0.25);
  CHECK(r.at("dropout").is_number_float());
  CHECK(r.at("init") == "SAMPLE_VOCAB");
  CHECK(r.at("init_text") == "a=b c");  // only the first '=' separates
  CHECK(r.at("encoder_hidden_size").is_null());
  // An integer given for a float option becomes a float.
  CHECK(resolve_options(d, config, {}).at("dropout").is_number_float());

  for (const char* text : {"true", "1"}) {
    CHECK(resolve_options(d, {}, {std::string("per_example=") + text}).at("per_example") == true);
  }
  for (const char* text : {"false", "0"}) {
    CHECK(resolve_options(d, {}, {std::string("per_example=") + text}).at("per_example") == false);
  }
}

TEST_CASE("bounds are inclusive") {
  const auto options = all_types();
  const auto d = describe(options);
  CHECK(resolve_options(d, {{"num_virtual_tokens", 1}}, {}).at("num_virtual_tokens") == 1);
  CHECK(resolve_options(d, {{"num_virtual_tokens", 4096}}, {}).at("num_virtual_tokens") == 4096);
  CHECK(resolve_options(d, {}, {"dropout=1"}).at("dropout").get<double>() == 1.0);
  CHECK(resolve_options(d, {}, {"dropout=0"}).at("dropout").get<double>() == 0.0);
  CHECK(error_of([&] {
          resolve_options(d, {{"num_virtual_tokens", 0}}, {});
        }) == "option num_virtual_tokens: expected an integer in [1, 4096], got 0");
  CHECK(error_of([&] { resolve_options(d, {}, {"num_virtual_tokens=4097"}); }) ==
        "option num_virtual_tokens: expected an integer in [1, 4096], got \"4097\"");
  CHECK(error_of([&] { resolve_options(d, {}, {"dropout=1.5"}); }) ==
        "option dropout: expected a number in [0, 1], got \"1.5\"");
}

TEST_CASE("values of the wrong type are rejected naming the option, expectation and value") {
  const auto options = all_types();
  const auto d = describe(options);
  struct Case {
    json config;
    std::vector<std::string> set;
    std::string message;
  };
  const std::vector<Case> cases = {
      {{},
       {"num_virtual_tokens=abc"},
       "option num_virtual_tokens: expected an integer in [1, 4096], got \"abc\""},
      {{},
       {"num_virtual_tokens=2.5"},
       "option num_virtual_tokens: expected an integer in [1, 4096], got \"2.5\""},
      {{},
       {"num_virtual_tokens="},
       "option num_virtual_tokens: expected an integer in [1, 4096], got \"\""},
      {{},
       {"num_virtual_tokens=null"},  // not nullable
       "option num_virtual_tokens: expected an integer in [1, 4096], got \"null\""},
      {{{"num_virtual_tokens", "20"}},
       {},
       "option num_virtual_tokens: expected an integer in [1, 4096], got \"20\""},
      {{{"num_virtual_tokens", 2.5}},
       {},
       "option num_virtual_tokens: expected an integer in [1, 4096], got 2.5"},
      {{{"num_virtual_tokens", nullptr}},
       {},
       "option num_virtual_tokens: expected an integer in [1, 4096], got null"},
      {{}, {"dropout=lots"}, "option dropout: expected a number in [0, 1], got \"lots\""},
      {{}, {"dropout=nan"}, "option dropout: expected a number in [0, 1], got \"nan\""},
      {{{"dropout", true}}, {}, "option dropout: expected a number in [0, 1], got true"},
      {{}, {"per_example=yes"}, "option per_example: expected true, false, 1 or 0, got \"yes\""},
      {{{"per_example", 1}}, {}, "option per_example: expected true or false, got 1"},
      {{{"init_text", 5}}, {}, "option init_text: expected a string or null, got 5"},
      {{},
       {"init=random"},
       "option init: expected one of \"RANDOM\", \"TEXT\", \"SAMPLE_VOCAB\", got \"random\""},
      {{{"init", nullptr}},
       {},
       "option init: expected one of \"RANDOM\", \"TEXT\", \"SAMPLE_VOCAB\", got null"},
      {{{"encoder_hidden_size", 0}},
       {},
       "option encoder_hidden_size: expected an integer in [1, 1000000] or null, got 0"},
  };
  for (const Case& c : cases) {
    INFO(c.message);
    CHECK(error_of([&] { resolve_options(d, c.config, c.set); }) == c.message);
  }
}

TEST_CASE("unknown keys are errors listing the known options, unless ignored") {
  const auto options = all_types();
  const auto d = describe(options, "prompt_demo");
  const std::string from_config = error_of([&] { resolve_options(d, {{"num_tokens", 3}}, {}); });
  CHECK(from_config.find("unknown option \"num_tokens\"") != std::string::npos);
  CHECK(from_config.find("prompt_demo") != std::string::npos);
  for (const auto& o : options) CHECK(from_config.find(o.name) != std::string::npos);

  const std::string from_set = error_of([&] { resolve_options(d, {}, {"bogus=1"}); });
  CHECK(from_set.find("unknown option \"bogus\" (in --set)") != std::string::npos);
  CHECK(from_set.find("num_virtual_tokens") != std::string::npos);

  // PEFT's own fields in adapter_config.json are not options but are expected there.
  const json config = {
      {"peft_type", "PROMPT_TUNING"}, {"task_type", "CAUSAL_LM"}, {"num_virtual_tokens", 5}};
  const json r = resolve_options(d, config, {}, {"peft_type", "task_type"});
  CHECK(r.at("num_virtual_tokens") == 5);
  CHECK_FALSE(r.contains("peft_type"));
  // Ignored keys are for the config file; --set takes options only.
  CHECK_THROWS_AS(resolve_options(d, {}, {"peft_type=X"}, {"peft_type"}), ph::Error);

  CHECK(error_of([&] { resolve_options(d, {}, {"no_equals_sign"}); }) ==
        "--set \"no_equals_sign\": expected NAME=VALUE");
  CHECK(error_of([&] { resolve_options(d, {}, {"=5"}); }) == "--set \"=5\": expected NAME=VALUE");
  CHECK(error_of([&] { resolve_options(d, json::array(), {}); }).find("must be a JSON object") !=
        std::string::npos);

  const std::vector<ph_option> none;
  const auto empty = describe(none, "bare");
  CHECK(error_of([&] {
          resolve_options(empty, {{"x", 1}}, {});
        }).find("bare takes no options") != std::string::npos);
}

TEST_CASE("declarations are checked: defaults must be JSON and satisfy their own declaration") {
  struct Case {
    ph_option option;
    std::string message;
  };
  const std::vector<Case> cases = {
      {ph::sdk::int_option("n", "twenty", 1, 10, ""),
       "plugin demo: option n: default_value 'twenty' is not valid JSON"},
      {ph::sdk::int_option("n", "0", 1, 10, ""),
       "plugin demo: option n: default value 0 does not satisfy its own declaration (expected an "
       "integer in [1, 10])"},
      {ph::sdk::int_option("n", "null", 1, 10, ""),
       "plugin demo: option n: default value null does not satisfy its own declaration (expected "
       "an integer in [1, 10])"},
      {ph::sdk::float_option("p", "\"0.5\"", 0, 1, ""),
       "plugin demo: option p: default value \"0.5\" does not satisfy its own declaration "
       "(expected a number in [0, 1])"},
      {ph::sdk::choice_option("init", "\"NONE\"", kInits, ""),
       "plugin demo: option init: default value \"NONE\" does not satisfy its own declaration "
       "(expected one of \"RANDOM\", \"TEXT\", \"SAMPLE_VOCAB\")"},
      {ph::sdk::choice_option("init", "\"RANDOM\"", nullptr, ""),
       "plugin demo: option init is a choice without choices"},
      {ph::sdk::int_option("n", "5", 10, 1, ""),
       "plugin demo: option n has bounds [10, 1] (min must be <= max)"},
      {ph::sdk::make_option("n", 9, "5", ""), "plugin demo: option n has an unknown type 9"},
      {ph::sdk::make_option("n", PH_OPTION_INT, nullptr, ""),
       "plugin demo: option n has no default_value (JSON text; \"null\" for none)"},
      {ph::sdk::make_option(nullptr, PH_OPTION_INT, "1", ""), "plugin demo: option #0 has no name"},
  };
  for (const Case& c : cases) {
    INFO(c.message);
    const std::vector<ph_option> options = {c.option};
    const auto d = describe(options);
    CHECK(error_of([&] { check_option_declarations(d); }) == c.message);
  }

  std::vector<ph_option> twice = {ph::sdk::bool_option("x", "true", ""),
                                  ph::sdk::bool_option("x", "false", "")};
  CHECK(error_of([&] { check_option_declarations(describe(twice)); }) ==
        "plugin demo: option x is declared twice");

  std::vector<ph_option> small = {ph::sdk::bool_option("x", "true", "")};
  small[0].struct_size = 8;
  CHECK(error_of([&] {
          check_option_declarations(describe(small));
        }).find("plugin demo: option #0: ph_option.struct_size is 8") == 0);

  ph_method_descriptor no_table = describe({});
  no_table.n_options = 2;
  CHECK(error_of([&] { check_option_declarations(no_table); }).find("option table is NULL") !=
        std::string::npos);

  const auto good = all_types();
  REQUIRE_NOTHROW(check_option_declarations(describe(good)));
}

TEST_CASE("options of a newer minor (larger ph_option) are read with the plugin's stride") {
  // A plugin compiled against ABI 1.N > 1.0 whose ph_option has grown by 16 bytes.
  struct BiggerOption {
    ph_option base;
    char added_in_a_later_minor[16];
  };
  BiggerOption options[2] = {};
  options[0].base = ph::sdk::int_option("first", "1", 0, 9, "");
  options[1].base = ph::sdk::bool_option("second", "true", "");
  for (auto& o : options) o.base.struct_size = sizeof(BiggerOption);
  ph_method_descriptor d = describe(&options[0].base, 2, "newer", "");
  REQUIRE_NOTHROW(check_option_declarations(d));
  CHECK(std::string(ph::host::option_at(d, 1).name) == "second");
  const json r = resolve_options(d, {}, {"second=false"});
  CHECK(r == json{{"first", 1}, {"second", false}});
}

TEST_CASE("describe_options prints one line per option with type, default, help and choices") {
  const auto options = all_types();
  const std::string text = describe_options(describe(options));
  CHECK(std::count(text.begin(), text.end(), '\n') == (long)options.size());
  CHECK(text.find("num_virtual_tokens (int in [1, 4096], default 20): virtual tokens\n") !=
        std::string::npos);
  CHECK(text.find("dropout (float in [0, 1], default 0.1): dropout probability\n") !=
        std::string::npos);
  CHECK(text.find("init (choice, default \"RANDOM\"): initialisation [RANDOM, TEXT, "
                  "SAMPLE_VOCAB]\n") != std::string::npos);
  CHECK(text.find("encoder_hidden_size (int in [1, 1000000] or null, default null)") !=
        std::string::npos);
}

TEST_CASE("integer lists (ABI 1.2): JSON arrays from a config or --set, every element bounded") {
  const std::vector<ph_option> options = {
      ph::sdk::int_list_option("cpt_token_ids", "[]", 0, 96, "the context's ids")};
  const auto d = describe(options);
  check_option_declarations(d);
  CHECK(resolve_options(d, {}, {}).at("cpt_token_ids") == json::array());
  CHECK(resolve_options(d, {{"cpt_token_ids", {9, 88, 91}}}, {}).at("cpt_token_ids") ==
        json({9, 88, 91}));
  CHECK(resolve_options(d, {}, {"cpt_token_ids=[1, 2,3]"}).at("cpt_token_ids") == json({1, 2, 3}));
  CHECK(resolve_options(d, {}, {"cpt_token_ids=[0,96]"}).at("cpt_token_ids") == json({0, 96}));
  const std::string expected =
      "option cpt_token_ids: expected a list of integers, each in [0, 96]";
  CHECK(error_of([&] { resolve_options(d, {}, {"cpt_token_ids=[1,97]"}); }) ==
        expected + " ([1,2,3]), got \"[1,97]\"");
  CHECK(error_of([&] { resolve_options(d, {}, {"cpt_token_ids=1,2"}); }) ==
        expected + " ([1,2,3]), got \"1,2\"");
  CHECK(error_of([&] { resolve_options(d, {{"cpt_token_ids", {1, 2.5}}}, {}); }) ==
        expected + ", got [1,2.5]");
  CHECK(error_of([&] { resolve_options(d, {{"cpt_token_ids", -1}}, {}); }) ==
        expected + ", got -1");
  CHECK(describe_options(d) ==
        "cpt_token_ids (int list, each in [0, 96], default []): the context's ids\n");
  const std::vector<ph_option> bad_default = {
      ph::sdk::int_list_option("ids", "[1, -1]", 0, 9, "ids")};
  CHECK(error_of([&] { check_option_declarations(describe(bad_default)); })
            .find("default value [1, -1] does not satisfy its own declaration") !=
        std::string::npos);
}
