// make_model_service: the CompletionService of `prompthost serve`, an AdapterRegistry and
// a Scheduler over one model.
#include "host/serve/completion_service.h"
#include "models/generate/generate.h"

namespace ph::serve {

namespace {

class ModelService : public CompletionService {
 public:
  ModelService(const Model& model, const Tokenizer* tokenizer, std::string base_name,
               std::vector<std::string> plugin_paths, SchedulerOptions options, Metrics& metrics)
      : model_(model),
        tokenizer_(tokenizer),
        stop_ids_(ph::stop_ids(model.config, tokenizer ? tokenizer->eos_id() : -1)),
        registry_(model, tokenizer, std::move(base_name), std::move(plugin_paths)),
        scheduler_(model, options, [&metrics](const StepReport& r) { metrics.observe_step(r); }) {}

  const std::string& base_name() const override { return registry_.base_name(); }
  int context_length() const override { return model_.config.max_positions; }
  const Tokenizer* tokenizer() const override { return tokenizer_; }
  std::vector<int32_t> stop_ids() const override { return stop_ids_; }

  AdapterSummary load(const std::string& name, const std::string& path) override {
    return registry_.load(name, path);
  }
  bool unload(const std::string& name) override { return registry_.unload(name); }
  std::vector<AdapterSummary> adapters() const override { return registry_.list(); }
  PreparedPrompt prepare(const std::string& model, const std::string& task,
                         const PromptInput& input) const override {
    return registry_.prepare(model, task, input);
  }

  uint64_t submit(std::vector<SequenceRequest> sequences) override {
    return scheduler_.submit(std::move(sequences));
  }
  void cancel(uint64_t request) override { scheduler_.cancel(request); }
  SchedulerStats stats() const override { return scheduler_.stats(); }
  void drain(std::chrono::milliseconds timeout) override { scheduler_.drain(timeout); }

 private:
  const Model& model_;
  const Tokenizer* tokenizer_;
  std::vector<int32_t> stop_ids_;
  AdapterRegistry registry_;
  Scheduler scheduler_;
};

}  // namespace

std::unique_ptr<CompletionService> make_model_service(const Model& model,
                                                      const Tokenizer* tokenizer,
                                                      std::string base_name,
                                                      std::vector<std::string> plugin_paths,
                                                      SchedulerOptions options, Metrics& metrics) {
  return std::make_unique<ModelService>(model, tokenizer, std::move(base_name),
                                        std::move(plugin_paths), options, metrics);
}

}  // namespace ph::serve
