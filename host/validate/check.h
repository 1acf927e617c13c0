// The conformance checks of `prompthost-validate` and what they report.
//
// A check is a function that returns normally to pass, throws CheckFailed to fail or
// CheckSkipped to skip; any other exception fails it with its message. It adds notes
// (numbers it measured, warnings) to the Report as it goes. The runner runs each check
// in a forked child, so a crash or a hang in the plugin becomes that check's result.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "models/config/model_config.h"

namespace ph::validate {

struct Context {
  std::string plugin;  // path of the plugin .so
  uint64_t seed = 1;
  std::vector<std::string> sets;  // --set key=value: options instead of the defaults
  // The task type the fixture's model host tells the plugin (per_task_type sets it).
  TaskType task = TaskType::kCausalLm;
};

class CheckFailed : public std::runtime_error {
 public:
  explicit CheckFailed(const std::string& why) : std::runtime_error(why) {}
};

class CheckSkipped : public std::runtime_error {
 public:
  explicit CheckSkipped(const std::string& why) : std::runtime_error(why) {}
};

// What a check says besides its verdict: measurements and warnings, one line each.
struct Report {
  std::vector<std::string> notes;
  void note(const std::string& line) { notes.push_back(line); }
  void warn(const std::string& line) { notes.push_back("warning: " + line); }
};

// Throws CheckFailed(why) unless `condition` holds.
inline void require(bool condition, const std::string& why) {
  if (!condition) throw CheckFailed(why);
}

struct Check {
  const char* name;
  const char* summary;
  // Needs the plugin to load: skipped when the handshake check failed in the same run.
  bool needs_load;
  void (*run)(const Context& ctx, Report& report);
};

// Every check, in the order they run.
const std::vector<Check>& all_checks();

// Runs `body` once per task type the plugin supports (its descriptor's task types; all
// of them when it declares none), with ctx.task set: the fixture's model host then tells
// the plugin that task type (and its PEFT facts) over the same tiny decoder. The first
// note says which task types were checked; every note of a run starts with its task
// type, and a failure or skip names it. checks_task_types.cpp.
void for_each_task_type(const Context& ctx, Report& report,
                        void (*body)(const Context& ctx, Report& report));
template <void (*Body)(const Context&, Report&)>
void per_task_type(const Context& ctx, Report& report) {
  for_each_task_type(ctx, report, Body);
}

// The checks, one group per file.
void check_symbols(const Context& ctx, Report& report);           // checks_library.cpp
void check_handshake(const Context& ctx, Report& report);         // checks_library.cpp
void check_metadata(const Context& ctx, Report& report);          // checks_library.cpp
void check_load_unload(const Context& ctx, Report& report);       // checks_library.cpp
void check_bad_configs(const Context& ctx, Report& report);       // checks_config.cpp
void check_gradient(const Context& ctx, Report& report);          // checks_training.cpp
void check_parameters(const Context& ctx, Report& report);        // checks_training.cpp
void check_random_batches(const Context& ctx, Report& report);    // checks_training.cpp
void check_state_round_trip(const Context& ctx, Report& report);  // checks_state.cpp
void check_determinism(const Context& ctx, Report& report);       // checks_state.cpp
void check_export(const Context& ctx, Report& report);            // checks_state.cpp
// ABI 1.2's features, each skipped (with the reason) when the plugin does not have it.
void check_adapter_prompts(const Context& ctx, Report& report);  // checks_features.cpp
void check_score_labels(const Context& ctx, Report& report);     // checks_features.cpp
void check_after_step(const Context& ctx, Report& report);       // checks_features.cpp
void check_teacher(const Context& ctx, Report& report);          // checks_features.cpp

}  // namespace ph::validate
