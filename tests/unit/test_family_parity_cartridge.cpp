// Parity with PEFT 0.20's CARTRIDGE (tests/fixtures/family/README.md §5) on every cartridge
// case of the family fixtures and of $PROMPTHOST_FIXTURES_FAMILY, each within a relative L2
// error of 1e-4:
//   - forward: the engine fed expect.injection gives expect.loss, expect.logits and
//     expect.grad_injection; the plugin holding PEFT's rows (imported, so split by
//     num_frozen_tokens) gives expect.injection and expect.grad.trainable_embedding; PEFT's
//     adapter folder loads through the CLI's path and gives expect32.logits / expect32.loss;
//   - init_from_text: the plugin initialised from input.text_ids (ph.host.model
//     prefix_from_ids) gives expect.prompt_embeddings, the split, and expect.logits/loss;
//   - distill_loss: the engine's teacher gives expect.teacher_logits; its top-k targets on the
//     plugin's cartridge give PEFT's example loss and expect.grad.trainable_embedding.
#include <catch.hpp>

#include <nlohmann/json.hpp>

#include "family_case.h"
#include "hf_case.h"
#include "host/plugin/method_instance.h"
#include "host/plugin/method_options.h"
#include "host/plugin/plugin_discovery.h"
#include "host/trainer/adapter_files.h"
#include "host/trainer/adapter_loading.h"
#include "host/trainer/distillation.h"
#include "models/engine/engine.h"
#include "test_support.h"

using namespace ph;

namespace {

constexpr double kTolerance = 1e-4;

using test::rel;

// A tokenizer that gives the fixture's token ids for any text (PEFT's fixture used the same
// stand-in), so the plugin's own path from a text to prefix_from_ids runs.
class FixedTokenizer : public Tokenizer {
 public:
  explicit FixedTokenizer(std::vector<int32_t> ids, int vocab)
      : ids_(std::move(ids)), vocab_(vocab) {}
  std::vector<int32_t> encode(std::string_view) const override { return ids_; }
  std::string decode(const std::vector<int32_t>&) const override { return ""; }
  int vocab_size() const override { return vocab_; }
  int bos_id() const override { return -1; }
  int eos_id() const override { return -1; }

 private:
  std::vector<int32_t> ids_;
  int vocab_;
};

// The batch as PEFT feeds a prefix method: real tokens only (right padding dropped), labels
// not padded.
std::vector<Sequence> read_batch(const SafetensorsFile& f, const std::string& prefix) {
  const auto ids = f.to_int64(prefix + "input_ids");
  const auto mask = f.to_int64(prefix + "attention_mask");
  const bool labelled = prefix == "input." && f.find("input.labels");
  const std::vector<int64_t> labels =
      labelled ? f.to_int64("input.labels") : std::vector<int64_t>{};
  const auto shape = f.info(prefix + "input_ids").shape;
  const size_t B = shape[0], S = shape[1];
  std::vector<Sequence> batch(B);
  for (size_t b = 0; b < B; ++b)
    for (size_t t = 0; t < S; ++t) {
      if (!mask[b * S + t]) continue;
      batch[b].tokens.push_back((int32_t)ids[b * S + t]);
      if (labelled) batch[b].labels.push_back((int32_t)labels[b * S + t]);
    }
  return batch;
}

// expect.logits [B, S, V] at each sequence's real positions, in batch order.
std::vector<float> real_logits(const SafetensorsFile& f, const char* name,
                               const std::vector<Sequence>& batch) {
  const auto all = test::floats(f, name);
  const auto shape = f.info(name).shape;
  std::vector<float> out;
  for (size_t b = 0; b < batch.size(); ++b) {
    const float* row = all.data() + b * shape[1] * shape[2];
    out.insert(out.end(), row, row + batch[b].tokens.size() * shape[2]);
  }
  return out;
}

std::vector<float> pass_logits(const TrainingPass& pass) {
  std::vector<float> out;
  for (const auto& lg : pass.logits()) out.insert(out.end(), lg.begin(), lg.end());
  return out;
}

Injection prefix_injection(const std::vector<float>& flat, const Model& model) {
  const ModelConfig& c = model.config;
  const int n = (int)(flat.size() / ((size_t)c.n_layers * 2 * c.n_kv_heads * c.head_dim));
  Injection inj;
  inj.prefix = test::prefix_from_flat(flat.data(), n, c.n_layers, c.n_kv_heads, c.head_dim);
  return inj;
}

std::unique_ptr<host::MethodInstance> make_instance(const host::ModelHost& model_host,
                                                    const nlohmann::json& config,
                                                    const nlohmann::json& set = {},
                                                    bool for_import = false) {
  auto library = host::find_plugin("cartridge", {});
  nlohmann::json given = config;
  if (set.is_object()) given.update(set);
  const auto options =
      host::resolve_options(library->descriptor(), given, {}, trainer::kPeftBaseFields);
  return std::make_unique<host::MethodInstance>(library, model_host, options, 1, for_import);
}

// The plugin holding PEFT's rows (frozen ++ trainable) through import_adapter.
void import_rows(host::MethodInstance& instance, const std::vector<float>& rows,
                 const nlohmann::json& config, int64_t n) {
  host::MethodInstance::Adapter a;
  a.tensors["prompt_embeddings"] = {{n, (int64_t)rows.size() / n}, rows};
  a.config = config;
  instance.import_adapter(a);
}

// d loss / d trainable_embedding by the plugin's backward of the engine's gradient.
std::vector<float> plugin_grad(host::MethodInstance& instance, const InjectionGrad& grad) {
  instance.zero_grad();
  instance.backward(1, {}, grad);
  REQUIRE(instance.parameters().size() == 1);
  const auto& p = instance.parameters()[0];
  REQUIRE(p.name == "trainable_embedding");
  return std::vector<float>(p.grad, p.grad + p.numel);
}

void check_forward_case(const test::FamilyCaseFile& c, const SafetensorsFile& f,
                        const Model& model) {
  const auto batch = read_batch(f, "input.");
  const auto injection = test::floats(f, "expect.injection");
  const int64_t n = c.config.at("num_virtual_tokens").get<int64_t>();
  {
    INFO("engine");
    TrainingPass pass(model, PassOptions{false, true});
    const double loss = pass.forward(batch, prefix_injection(injection, model));
    const double want = test::floats(f, "expect.loss")[0];
    INFO("loss " << loss << ", reference " << want);
    CHECK(std::abs(loss - want) <= kTolerance * std::abs(want));
    CHECK(rel(pass_logits(pass), real_logits(f, "expect.logits", batch)) <= kTolerance);
    InjectionGrad grad;
    pass.backward(grad);
    CHECK(rel(test::prefix_to_flat(grad.prefix), test::floats(f, "expect.grad_injection")) <=
          kTolerance);
  }
  {
    INFO("plugin");
    host::ModelHost model_host(model, nullptr);
    auto instance = make_instance(model_host, c.config, {}, true);
    import_rows(*instance, injection, c.config, n);
    const Injection inj = instance->forward(1, {}, false);
    CHECK(rel(test::prefix_to_flat(inj.prefix), injection) <= kTolerance);
    const auto& p = instance->parameters().at(0);
    CHECK(rel(std::vector<float>(p.value, p.value + p.numel),
              test::floats(f, "param.trainable_embedding")) <= kTolerance);
    InjectionGrad g;
    g.prefix = prefix_injection(test::floats(f, "expect.grad_injection"), model).prefix;
    CHECK(rel(plugin_grad(*instance, g), test::floats(f, "expect.grad.trainable_embedding")) <=
          kTolerance);
  }
  {
    INFO("PEFT's adapter folder " << c.adapter_dir());
    host::ModelHost model_host(model, nullptr);
    const auto loaded = trainer::open_adapter(c.adapter_dir().string(), model_host, {});
    TrainingPass pass(model, PassOptions{false, true});
    const double loss = pass.forward(batch, loaded.method->forward(1, {}, false));
    const double want = test::floats(f, "expect32.loss")[0];
    CHECK(std::abs(loss - want) <= kTolerance * std::abs(want));
    CHECK(rel(pass_logits(pass), real_logits(f, "expect32.logits", batch)) <= kTolerance);
  }
}

void check_init_from_text(const test::FamilyCaseFile& c, const SafetensorsFile& f,
                          const Model& model) {
  const auto text_ids = f.to_int64("input.text_ids");
  const FixedTokenizer tokenizer(std::vector<int32_t>(text_ids.begin(), text_ids.end()),
                                 model.config.vocab_size);
  host::ModelHost model_host(model, &tokenizer);
  // The fixture's stand-in tokenizer gave the ids alone (no BOS).
  auto instance = make_instance(model_host, c.config,
                                {{"init_text", "the text"}, {"init_text_add_bos", false}});
  const Injection inj = instance->forward(1, {}, false);
  CHECK(rel(test::prefix_to_flat(inj.prefix), test::floats(f, "expect.prompt_embeddings")) <=
        kTolerance);
  const auto& p = instance->parameters().at(0);
  CHECK(rel(std::vector<float>(p.value, p.value + p.numel),
            test::floats(f, "expect.trainable_embedding")) <= kTolerance);
  // the frozen rows: the exported prefix's first num_frozen_tokens rows
  const auto exported = instance->export_adapter();
  const auto& rows = exported.tensors.at("prompt_embeddings").second;
  const auto frozen = test::floats(f, "expect.frozen_embedding");
  CHECK(rel(std::vector<float>(rows.begin(), rows.begin() + frozen.size()), frozen) <= kTolerance);
  CHECK(exported.config.at("num_frozen_tokens") == c.config.at("num_frozen_tokens"));

  const auto batch = read_batch(f, "input.");
  TrainingPass pass(model, PassOptions{false, true});
  const double loss = pass.forward(batch, inj);
  const double want = test::floats(f, "expect.loss")[0];
  CHECK(std::abs(loss - want) <= kTolerance * std::abs(want));
  CHECK(rel(pass_logits(pass), real_logits(f, "expect.logits", batch)) <= kTolerance);

  // fewer tokens than num_virtual_tokens: refused, naming the option
  const int n = c.config.at("num_virtual_tokens").get<int>();
  const FixedTokenizer short_text(std::vector<int32_t>(text_ids.begin(), text_ids.begin() + n - 1),
                                  model.config.vocab_size);
  host::ModelHost short_host(model, &short_text);
  const std::string error = test::error_message([&] {
    make_instance(short_host, c.config, {{"init_text", "short"}, {"init_text_add_bos", false}});
  });
  CHECK(error.find("init_text") != std::string::npos);
  CHECK(error.find("fewer than num_virtual_tokens") != std::string::npos);
}

void check_distill_loss(const test::FamilyCaseFile& c, const SafetensorsFile& f,
                        const Model& model) {
  const auto teacher_batch = read_batch(f, "input.teacher_");
  auto student = read_batch(f, "input.student_");
  const auto ctx_len = f.to_int64("input.ctx_len");
  trainer::TeacherSettings settings;
  settings.top_k = (int)f.to_int64("input.top_k")[0];
  settings.temperature = (float)test::floats(f, "input.teacher_temperature")[0];
  {
    INFO("teacher logits");
    TrainingPass pass(model, PassOptions{false, true});
    pass.forward(teacher_batch, Injection{});
    CHECK(rel(pass_logits(pass), real_logits(f, "expect.teacher_logits", teacher_batch)) <=
          kTolerance);
  }
  for (size_t b = 0; b < student.size(); ++b) {
    const auto& t = teacher_batch[b].tokens;
    const std::vector<int32_t> context(t.begin(), t.begin() + ctx_len[b]);
    REQUIRE(std::vector<int32_t>(t.begin() + ctx_len[b], t.end()) == student[b].tokens);
    student[b].soft_targets = trainer::teacher_targets(model, context, student[b].tokens, settings);
  }
  host::ModelHost model_host(model, nullptr);
  auto instance = make_instance(model_host, c.config, {}, true);
  std::vector<float> rows = test::floats(f, "frozen.frozen_embedding");
  const auto trainable = test::floats(f, "param.trainable_embedding");
  rows.insert(rows.end(), trainable.begin(), trainable.end());
  import_rows(*instance, rows, c.config, c.config.at("num_virtual_tokens").get<int64_t>());
  TrainingPass pass(model);
  const double loss = pass.forward(student, instance->forward(1, {}, true));
  const double want = test::floats(f, "expect.loss")[0];
  INFO("distillation loss " << loss << ", reference " << want);
  CHECK(std::abs(loss - want) <= kTolerance * std::abs(want));
  InjectionGrad grad;
  pass.backward(grad);
  CHECK(rel(plugin_grad(*instance, grad), test::floats(f, "expect.grad.trainable_embedding")) <=
        kTolerance);
}

}  // namespace

TEST_CASE("the cartridge plugin and the engine match PEFT's CARTRIDGE on every family case",
          "[parity]") {
  const auto cases = test::family_cases("cartridge");
  REQUIRE(!cases.empty());
  for (const auto& c : cases)
    DYNAMIC_SECTION(c.file.filename().string() << " in " << c.root.string()) {
      const SafetensorsFile f(c.file.string());
      const Model model = load_model(c.model_dir().string());
      if (c.kind == "forward") {
        check_forward_case(c, f, model);
      } else if (c.kind == "init_from_text") {
        check_init_from_text(c, f, model);
      } else {
        REQUIRE(c.kind == "distill_loss");
        check_distill_loss(c, f, model);
      }
    }
}
