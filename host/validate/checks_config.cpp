// Configurations: bad option values are rejected, naming the option, by the host's
// validation of the plugin's declarations; the default configuration creates an instance;
// malformed config text handed straight to the plugin's create is refused with a status.
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "host/plugin/method_options.h"
#include "host/plugin/status.h"
#include "host/validate/check.h"
#include "host/validate/fixture.h"

namespace ph::validate {
namespace {

struct BadValue {
  std::string why;
  nlohmann::json value;
};

// Values that break the option's declaration, each with what is wrong with it.
std::vector<BadValue> bad_values(const ph_option& o) {
  std::vector<BadValue> bad;
  auto bounds = [&](bool integer) {
    const double step = integer ? 1.0 : 0.0;
    if (std::isfinite(o.min_value)) {
      const double below = o.min_value - std::max(step, std::max(1.0, std::fabs(o.min_value)));
      bad.push_back({"below the minimum",
                     integer ? nlohmann::json((long long)below) : nlohmann::json(below)});
    }
    if (std::isfinite(o.max_value)) {
      const double above = o.max_value + std::max(step, std::max(1.0, std::fabs(o.max_value)));
      bad.push_back({"above the maximum",
                     integer ? nlohmann::json((long long)above) : nlohmann::json(above)});
    }
  };
  switch (o.type) {
    case PH_OPTION_INT:
      bad.push_back({"a string for an int", "abc"});
      bad.push_back({"a fraction for an int", 1.5});
      bad.push_back({"a boolean for an int", true});
      bounds(true);
      break;
    case PH_OPTION_FLOAT:
      bad.push_back({"a string for a float", "abc"});
      bad.push_back({"a boolean for a float", true});
      bounds(false);
      break;
    case PH_OPTION_BOOL:
      bad.push_back({"a number for a bool", 1});
      bad.push_back({"a string for a bool", "yes"});
      break;
    case PH_OPTION_STRING:
      bad.push_back({"a number for a string", 42});
      bad.push_back({"an array for a string", nlohmann::json::array()});
      break;
    case PH_OPTION_CHOICE:
      bad.push_back({"a number for a choice", 42});
      bad.push_back({"a string not among the choices", "__not_a_choice__"});
      break;
    case PH_OPTION_INT_LIST:
      bad.push_back({"a string for an int list", "abc"});
      bad.push_back({"a fraction in an int list", nlohmann::json::array({1.5})});
      break;
  }
  if (!o.nullable) bad.push_back({"null for a non-nullable option", nullptr});
  return bad;
}

// A --set assignment value the option's type cannot parse, or "" when every text parses.
std::string bad_assignment(const ph_option& o) {
  switch (o.type) {
    case PH_OPTION_INT:
    case PH_OPTION_FLOAT:
    case PH_OPTION_INT_LIST:
      return "abc";
    case PH_OPTION_BOOL:
      return "maybe";
    case PH_OPTION_CHOICE:
      return "__not_a_choice__";
  }
  return "";
}

// Runs resolve_options and requires it to throw an error that names `key`.
void expect_rejected(const ph_method_descriptor& d, const nlohmann::json& config,
                     const std::vector<std::string>& sets, const std::string& key,
                     const std::string& what) {
  try {
    host::resolve_options(d, config, sets);
  } catch (const std::exception& e) {
    require(std::string(e.what()).find(key) != std::string::npos,
            what + ": rejected, but the message does not name \"" + key + "\": " + e.what());
    return;
  }
  throw CheckFailed(what + ": accepted");
}

// Calls the plugin's create with config text as is. Returns "" when it refused properly
// (a status with a message, *out untouched), "accepted" when it created an instance
// (destroyed again), else what was wrong.
std::string create_raw(const Fixture& f, const std::string& config_text, ph_code* code_out,
                       std::string* message_out) {
  const ph_plugin_entry& entry = f.library->entry();
  const ph_host* host = f.model_host->table();
  ph_method sentinel{};
  ph_method* out = &sentinel;
  ph_status* status = entry.create(host, &f.model_host->info(), config_text.c_str(), 1, 0, &out);
  if (!status) {
    if (out && out != &sentinel) out->destroy(out);
    return "accepted";
  }
  *code_out = host::status_code(status);
  *message_out = host::status_message(status) ? host::status_message(status) : "";
  host->status_release(host, status);
  if (out != &sentinel) return "failed but changed *out";
  if (message_out->empty()) return "failed with an empty message";
  return "";
}

}  // namespace

void check_bad_configs(const Context& ctx, Report& report) {
  Fixture f(ctx);
  const ph_method_descriptor& d = f.library->descriptor();

  // The host's validation of the declarations.
  int rejected = 0;
  for (uint32_t i = 0; i < d.n_options; ++i) {
    const ph_option& o = d.options[i];
    for (const auto& bad : bad_values(o)) {
      expect_rejected(
          d, {{o.name, bad.value}}, {}, o.name,
          std::string("option \"") + o.name + "\" = " + bad.value.dump() + " (" + bad.why + ")");
      ++rejected;
    }
    const std::string text = bad_assignment(o);
    if (!text.empty()) {
      const std::string set = std::string(o.name) + "=" + text;
      expect_rejected(d, nlohmann::json::object(), {set}, o.name, "--set " + set);
      ++rejected;
    }
  }
  expect_rejected(d, {{"__no_such_option__", 1}}, {}, "__no_such_option__",
                  "unknown key \"__no_such_option__\"");
  ++rejected;
  report.note(std::to_string(rejected) +
              " bad values rejected by resolve_options, each naming "
              "its option");

  // The default configuration creates an instance on the tiny model.
  try {
    f.create(ctx.seed);
  } catch (const std::exception& e) {
    throw CheckFailed(std::string("creating an instance with the default options failed: ") +
                      e.what());
  }

  // Malformed config text straight through the ABI: a status, never an instance or a crash.
  const std::vector<std::pair<std::string, std::string>> malformed = {
      {"{not json", "text that is not JSON"},
      {"", "an empty string"},
      {"[1, 2]", "a JSON array"},
      {"null", "JSON null"},
  };
  for (const auto& [text, what] : malformed) {
    ph_code code = PH_OK;
    std::string message;
    const std::string problem = create_raw(f, text, &code, &message);
    require(problem.empty(), "create with " + what + " as config_json: " + problem);
    if (code != PH_ERR_INVALID_CONFIG)
      report.warn("create with " + what + " fails with code " + std::to_string(code) +
                  " rather than PH_ERR_INVALID_CONFIG: " + message);
  }
  report.note(
      "create refuses malformed config_json (not JSON, empty, an array, null) with a "
      "status");

  // Values of the wrong type straight through the ABI (the host never sends these, so an
  // instance is allowed, but not a crash).
  int accepted = 0;
  for (uint32_t i = 0; i < d.n_options; ++i) {
    const ph_option& o = d.options[i];
    nlohmann::json config = f.options;
    config[o.name] = (o.type == PH_OPTION_STRING || o.type == PH_OPTION_CHOICE)
                         ? nlohmann::json(42)
                         : nlohmann::json("abc");
    ph_code code = PH_OK;
    std::string message;
    const std::string problem = create_raw(f, config.dump(), &code, &message);
    if (problem == "accepted")
      ++accepted;
    else
      require(problem.empty(),
              std::string("create with a wrong-typed \"") + o.name + "\": " + problem);
  }
  if (accepted)
    report.note(std::to_string(accepted) +
                " wrong-typed option values passed straight to "
                "create were accepted (allowed: the host validates first)");
}

}  // namespace ph::validate
