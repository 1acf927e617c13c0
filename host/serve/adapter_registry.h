// The adapters a server holds, by name, and the preparation of a request's prompt for one
// of them (or for the base model).
//
// Loading opens the folder as `prompthost generate --adapter` does (open_adapter: the
// plugin, the tensors, the check that it belongs to this model) and computes its
// injection cache once per task (InjectionCache), which every request then shares
// read-only. All members are thread-safe: the HTTP threads prepare prompts while an
// administrator loads or unloads adapters.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "host/serve/prepared_prompt.h"
#include "host/trainer/generation_prompt.h"
#include "models/engine/model.h"
#include "models/tokenizer/tokenizer.h"

namespace ph::serve {

struct AdapterSummary {
  std::string name;
  std::string path;
  std::string method;     // the plugin's name (prompt_tuning, prefix_tuning, ...)
  std::string peft_type;  // PROMPT_TUNING, PREFIX_TUNING, P_TUNING, MULTITASK_PROMPT_TUNING
  int num_virtual_tokens = 0;
  std::vector<std::string> task_names;  // a multitask adapter's tasks (by index if unnamed)
  bool has_template = false;            // a P-tuning template places the virtual tokens
};

// A request's prompt: text (tokenized, BOS prepended when the model wants one and `bos`)
// or token ids used as given; fields is_ids, text, ids, bos. The type `prompthost
// generate` encodes too (host/trainer/generation_prompt.h).
using PromptInput = trainer::GenerationInput;

class AdapterRegistry {
 public:
  // `base_name`: the name requests use for the model alone (its "model" field).
  AdapterRegistry(const Model& model, const Tokenizer* tokenizer, std::string base_name,
                  std::vector<std::string> plugin_paths);
  ~AdapterRegistry();
  AdapterRegistry(const AdapterRegistry&) = delete;
  AdapterRegistry& operator=(const AdapterRegistry&) = delete;

  const std::string& base_name() const;
  // Throws ApiError: 400 when the name is taken or malformed (empty, with ':' or '/',
  // the base model's) or the folder is not an adapter of this model (the reason: another
  // base model, another geometry, an unknown method...); the registry is unchanged then.
  AdapterSummary load(const std::string& name, const std::string& path);
  // False when no adapter has that name. Sequences already running on it finish (they
  // hold its injection cache).
  bool unload(const std::string& name);
  std::vector<AdapterSummary> list() const;  // in order of loading

  // The request's prompt for `model` — the base name, an adapter's name, or "NAME:TASK"
  // for a multitask adapter (`task`, when not empty, names the task instead; both given
  // must agree). Encoded as `prompthost generate` encodes it (the adapter's template,
  // the task's injection). Throws ApiError: 404 for an unknown model, 400 for a bad
  // prompt (an id outside the vocabulary, text with no tokenizer), a missing or unknown
  // task, a task for an adapter without tasks.
  PreparedPrompt prepare(const std::string& model, const std::string& task,
                         const PromptInput& input) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ph::serve
