// What the HTTP API needs from the model side, in one interface: the adapters it serves
// (AdapterRegistry) and the decoding of sequences (Scheduler). The server uses the
// model-backed one (make_model_service); the API's tests put a scripted one behind the
// same HTTP layer, to reach every error and timing case without a model.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "host/serve/adapter_registry.h"
#include "host/serve/metrics.h"
#include "host/serve/scheduler.h"
#include "models/engine/model.h"
#include "models/tokenizer/tokenizer.h"

namespace ph::serve {

class CompletionService {
 public:
  virtual ~CompletionService() = default;
  virtual const std::string& base_name() const = 0;
  virtual int context_length() const = 0;          // positions: injection + prompt + generated
  virtual const Tokenizer* tokenizer() const = 0;  // null: prompts must be token ids
  virtual std::vector<int32_t> stop_ids() const = 0;

  // As AdapterRegistry's members (same errors).
  virtual AdapterSummary load(const std::string& name, const std::string& path) = 0;
  virtual bool unload(const std::string& name) = 0;
  virtual std::vector<AdapterSummary> adapters() const = 0;
  virtual PreparedPrompt prepare(const std::string& model, const std::string& task,
                                 const PromptInput& input) const = 0;

  // As Scheduler's members.
  virtual uint64_t submit(std::vector<SequenceRequest> sequences) = 0;
  virtual void cancel(uint64_t request) = 0;
  virtual SchedulerStats stats() const = 0;
  virtual void drain(std::chrono::milliseconds timeout) = 0;
};

// The real thing over `model` (which must outlive it): an AdapterRegistry and a Scheduler
// whose steps are reported to `metrics`.
std::unique_ptr<CompletionService> make_model_service(const Model& model,
                                                      const Tokenizer* tokenizer,
                                                      std::string base_name,
                                                      std::vector<std::string> plugin_paths,
                                                      SchedulerOptions options, Metrics& metrics);

}  // namespace ph::serve
