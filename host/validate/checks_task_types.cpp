// Checks run once per task type: the plugin's declared task types, each told to it by the
// fixture's model host in turn.
#include <string>
#include <vector>

#include "host/plugin/plugin_library.h"
#include "host/plugin/task_types.h"
#include "host/validate/check.h"

namespace ph::validate {

namespace {

constexpr TaskType kEveryTaskType[] = {TaskType::kCausalLm, TaskType::kSeq2SeqLm,
                                       TaskType::kSeqCls};

}  // namespace

void for_each_task_type(const Context& ctx, Report& report,
                        void (*body)(const Context& ctx, Report& report)) {
  std::vector<TaskType> tasks;
  {
    const auto library = host::PluginLibrary::load(ctx.plugin);
    tasks = host::declared_task_types(library->descriptor());
  }
  const bool declared = !tasks.empty();
  if (!declared) tasks.assign(std::begin(kEveryTaskType), std::end(kEveryTaskType));
  std::string names;
  for (TaskType t : tasks) names += (names.empty() ? "" : ", ") + std::string(task_type_name(t));
  report.note("task types checked: " + names +
              (declared ? " (declared by the plugin)" : " (the plugin declares none: all)"));
  for (TaskType task : tasks) {
    Context each = ctx;
    each.task = task;
    Report sub;
    const std::string name = task_type_name(task);
    try {
      body(each, sub);
    } catch (const CheckSkipped& e) {
      throw CheckSkipped(std::string(e.what()) + " (task type " + name + ")");
    } catch (const std::exception& e) {
      for (const auto& note : sub.notes) report.note(name + ": " + note);
      throw CheckFailed(std::string(e.what()) + " (task type " + name + ")");
    }
    for (const auto& note : sub.notes) report.note(name + ": " + note);
  }
}

}  // namespace ph::validate
