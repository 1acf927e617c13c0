// The p_tuning plugin on the bundled demo model, beyond the fixture parity: a template
// places the virtual tokens where it says (as the host encodes examples) and the
// gradient through the engine for such a batch matches finite differences of the loss
// with respect to every parameter tensor (MLP and LSTM); encoder dropout only in
// training; export/import round trip; a bad template is refused naming "template".
#include <catch.hpp>

#include <algorithm>
#include <cmath>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "host/plugin/method_instance.h"
#include "host/plugin/method_options.h"
#include "host/plugin/plugin_library.h"
#include "host/trainer/dataset.h"
#include "models/common/error.h"
#include "models/engine/engine.h"
#include "test_support.h"

using namespace ph;
using json = nlohmann::json;

namespace {

const char* const kTemplate = "[P:2] {input} [P:3] {output}";

// The demo model, its tokenizer, a host for them and the build's p_tuning plugin.
struct Demo {
  Model model = load_model(test::source_path("models/demo/hf"));
  std::unique_ptr<Tokenizer> tokenizer = load_tokenizer(test::source_path("models/demo/hf"));
  host::ModelHost host{model, tokenizer.get()};
  std::shared_ptr<host::PluginLibrary> library =
      host::PluginLibrary::load(std::string(PROMPTHOST_BINARY_DIR) + "/plugins/ph_p_tuning.so");

  std::unique_ptr<host::MethodInstance> create(const std::vector<std::string>& set,
                                               uint64_t seed = 1) {
    const json options = host::resolve_options(library->descriptor(), json::object(), set);
    return std::make_unique<host::MethodInstance>(library, host, options, seed);
  }
};

trainer::Example example(const std::string& input, const std::string& output) {
  trainer::Example ex;
  ex.input = input;
  ex.output = output;
  ex.has_output = true;
  return ex;
}

trainer::EncodeOptions demo_encoding() {
  trainer::EncodeOptions enc;
  enc.bos_id = 1;
  enc.eos_id = 2;
  return enc;
}

// Two examples laid out by the instance's template, as the trainer does.
std::vector<Sequence> templated_batch(const Demo& demo, const host::MethodInstance& instance) {
  const auto parts =
      trainer::parse_template(instance.template_text(), instance.injection().n_virtual);
  std::vector<Sequence> batch;
  for (const auto& ex : {example("Quote: Never trust a computer.\nTopic:", " computers"),
                         example("Quote: With reasonable men I will reason.\nTopic:", " politics")})
    batch.push_back(trainer::encode_example(ex, *demo.tokenizer, parts, demo_encoding()).sequence);
  return batch;
}

std::vector<float> flat(const xt::xtensor<float, 3>& t) {
  return std::vector<float>(t.data(), t.data() + t.size());
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

}  // namespace

TEST_CASE("p_tuning: a template places the virtual tokens where it says", "[p_tuning]") {
  Demo demo;
  auto instance = demo.create(
      {"num_virtual_tokens=5", "encoder_hidden_size=16", std::string("template=") + kTemplate});
  CHECK(instance->template_text() == kTemplate);
  CHECK(instance->injection().n_virtual == 5);

  const auto ex = example("Quote: Never trust a computer.\nTopic:", " computers");
  const auto in_ids = demo.tokenizer->encode(ex.input), out_ids = demo.tokenizer->encode(ex.output);
  const auto parts = trainer::parse_template(instance->template_text(), 5);
  const trainer::Encoded e = trainer::encode_example(ex, *demo.tokenizer, parts, demo_encoding());
  const auto& s = e.sequence;
  // [P:2] BOS input [P:3] output EOS
  REQUIRE(s.tokens.size() == 2 + 1 + in_ids.size() + 3 + out_ids.size() + 1);
  CHECK(s.tokens[0] == virtual_slot(0));
  CHECK(s.tokens[1] == virtual_slot(1));
  CHECK(s.tokens[2] == 1);
  const size_t second = 3 + in_ids.size();
  for (int k = 0; k < 3; ++k) {
    CHECK(s.tokens[second + k] == virtual_slot(2 + k));
    CHECK(s.labels[second + k] == kIgnoreLabel);
  }
  CHECK(s.tokens[second + 3] == out_ids[0]);
  CHECK(s.labels[second + 3] == out_ids[0]);
  CHECK(e.prompt_length == (int)second + 3);

  // The engine takes the injection's rows at those slots: changing rows 2..4 leaves the
  // logits of the real tokens before the second group alone and changes those after.
  Injection inj = instance->forward(1, {}, false);
  PassOptions all;
  all.all_logits = true;
  TrainingPass pass(demo.model, all);
  pass.forward({s}, inj);
  const xt::xtensor<float, 2> before = pass.logits()[0];
  for (int k = 2; k < 5; ++k)
    for (size_t d = 0; d < inj.virtual_tokens.shape(2); ++d) inj.virtual_tokens(0, k, d) += 0.5f;
  pass.forward({s}, inj);
  const xt::xtensor<float, 2>& after = pass.logits()[0];
  const size_t real_before = 1 + in_ids.size();  // BOS and the input
  REQUIRE(after.shape(0) == 1 + in_ids.size() + out_ids.size() + 1);
  for (size_t t = 0; t < after.shape(0); ++t) {
    float diff = 0.0f;
    for (size_t v = 0; v < after.shape(1); ++v)
      diff = std::max(diff, std::fabs(after(t, v) - before(t, v)));
    INFO("real token " << t);
    if (t < real_before)
      CHECK(diff == 0.0f);
    else
      CHECK(diff > 0.0f);
  }
}

TEST_CASE(
    "p_tuning: gradients through the engine match finite differences for a templated "
    "batch",
    "[p_tuning]") {
  Demo demo;
  for (const std::string kind : {"MLP", "LSTM"}) {
    DYNAMIC_SECTION(kind) {
      auto instance = demo.create({"num_virtual_tokens=5", "encoder_hidden_size=12",
                                   "encoder_reparameterization_type=" + kind,
                                   std::string("template=") + kTemplate});
      const std::vector<Sequence> batch = templated_batch(demo, *instance);
      const int B = (int)batch.size();
      auto loss = [&] {
        const Injection inj = instance->forward(B, {}, false);
        TrainingPass pass(demo.model);
        return pass.forward(batch, inj);
      };

      // analytic: engine backward to the injection, plugin backward to the parameters
      instance->zero_grad();
      const Injection inj = instance->forward(B, {}, true);
      TrainingPass pass(demo.model);
      pass.forward(batch, inj);
      InjectionGrad g;
      pass.backward(g);
      instance->backward(B, {}, g);

      // Per parameter tensor, two unit directions within it: along its gradient (the
      // directional derivative is |grad|) and a random one. Central differences with steps
      // 1e-2 and 1e-3 (the better counts); tolerance 1% of |grad| plus the float32 loss's
      // noise floor.
      std::mt19937_64 rng(5);
      std::normal_distribution<double> normal;
      for (const auto& p : instance->parameters()) {
        double grad_norm = 0.0;
        for (size_t i = 0; i < p.numel; ++i) grad_norm += (double)p.grad[i] * p.grad[i];
        grad_norm = std::sqrt(grad_norm);
        REQUIRE(grad_norm > 0.0);
        for (int direction = 0; direction < 2; ++direction) {
          std::vector<double> u(p.numel);
          double norm = 0.0;
          for (size_t i = 0; i < p.numel; ++i) {
            u[i] = direction == 0 ? (double)p.grad[i] : normal(rng);
            norm += u[i] * u[i];
          }
          double analytic = 0.0;
          for (size_t i = 0; i < p.numel; ++i) analytic += (u[i] /= std::sqrt(norm)) * p.grad[i];
          const std::vector<float> base(p.value, p.value + p.numel);
          double best = INFINITY, best_fd = 0.0;
          for (double step : {1e-2, 1e-3}) {
            auto at = [&](double h) {
              for (size_t i = 0; i < p.numel; ++i) p.value[i] = (float)(base[i] + h * u[i]);
              const double l = loss();
              std::copy(base.begin(), base.end(), p.value);
              return l;
            };
            const double fd = (at(step) - at(-step)) / (2 * step);
            if (std::fabs(fd - analytic) < best) best = std::fabs(fd - analytic), best_fd = fd;
          }
          INFO(kind << " parameter " << p.name
                    << (direction ? ", random direction" : ", along the gradient")
                    << ": finite difference " << best_fd << ", analytic " << analytic << ", |grad| "
                    << grad_norm);
          CHECK(best <= 1e-2 * grad_norm + 3e-5);
        }
      }
    }
  }
}

TEST_CASE("p_tuning: encoder dropout acts in training only, keyed by the step", "[p_tuning]") {
  Demo demo;
  auto instance = demo.create({"num_virtual_tokens=4", "encoder_hidden_size=8",
                               "encoder_reparameterization_type=LSTM", "encoder_dropout=0.5"});
  const auto eval_a = flat(instance->forward(1, {}, false).virtual_tokens);
  const auto eval_b = flat(instance->forward(1, {}, false).virtual_tokens);
  CHECK(eval_a == eval_b);
  const auto train_0 = flat(instance->forward(1, {}, true, 0).virtual_tokens);
  const auto train_0_again = flat(instance->forward(1, {}, true, 0).virtual_tokens);
  const auto train_1 = flat(instance->forward(1, {}, true, 1).virtual_tokens);
  CHECK(train_0 != eval_a);
  CHECK(train_0 == train_0_again);
  CHECK(train_1 != train_0);
  // the export is the eval-mode output
  const auto adapter = instance->export_adapter();
  CHECK(adapter.tensors.at("prompt_embeddings").second == eval_a);

  // without dropout (or with the MLP, which has none) training changes nothing
  auto plain = demo.create(
      {"num_virtual_tokens=4", "encoder_hidden_size=8", "encoder_reparameterization_type=LSTM"});
  CHECK(flat(plain->forward(1, {}, true, 3).virtual_tokens) ==
        flat(plain->forward(1, {}, false).virtual_tokens));
  auto mlp = demo.create({"num_virtual_tokens=4", "encoder_hidden_size=8", "encoder_dropout=0.5"});
  CHECK(flat(mlp->forward(1, {}, true, 3).virtual_tokens) ==
        flat(mlp->forward(1, {}, false).virtual_tokens));
}

TEST_CASE("p_tuning: export and import round trip", "[p_tuning]") {
  Demo demo;
  for (const std::string kind : {"MLP", "LSTM"}) {
    DYNAMIC_SECTION(kind) {
      const std::vector<std::string> set = {"num_virtual_tokens=6", "encoder_hidden_size=10",
                                            "encoder_reparameterization_type=" + kind,
                                            "encoder_dropout=0.25"};
      auto original = demo.create(set, 1);
      const auto adapter = original->export_adapter();
      REQUIRE(adapter.tensors.size() == 1);
      const auto& [shape, values] = adapter.tensors.at("prompt_embeddings");
      CHECK(shape == std::vector<int64_t>{6, 128});
      CHECK(adapter.config.at("num_virtual_tokens") == 6);
      CHECK(adapter.config.at("encoder_reparameterization_type") == kind);
      CHECK(adapter.config.at("encoder_hidden_size") == 10);
      CHECK(adapter.config.at("encoder_num_layers") == 2);
      CHECK(adapter.config.at("encoder_dropout") == 0.25);
      const auto want = flat(original->forward(1, {}, false).virtual_tokens);
      CHECK(values == want);

      auto imported = demo.create(set, 2);
      CHECK(flat(imported->forward(1, {}, false).virtual_tokens) != want);
      imported->import_adapter(adapter);
      // exactly the exported embeddings, in training too, for any batch size
      CHECK(flat(imported->forward(1, {}, false).virtual_tokens) == want);
      CHECK(flat(imported->forward(3, {}, true, 7).virtual_tokens) == want);
      CHECK(imported->export_adapter().tensors.at("prompt_embeddings").second == want);

      // an export of another shape is refused, naming the tensor and the expected shape
      host::MethodInstance::Adapter wrong = adapter;
      wrong.tensors["prompt_embeddings"] = {{5, 128}, std::vector<float>(5 * 128, 0.0f)};
      auto other = demo.create(set, 3);
      const std::string message = test::error_message([&] { other->import_adapter(wrong); });
      CHECK(contains(message, "prompt_embeddings"));
      CHECK(contains(message, "[6, 128]"));
    }
  }
}

TEST_CASE("p_tuning: a bad template is a configuration error naming \"template\"", "[p_tuning]") {
  Demo demo;
  for (const std::string bad : {"[P:2] {input} [P:2] {output}",  // 4 of 5
                                "[P:5] {output}",                // no {input}
                                "[P:x] {input} [P:5]",           // not a count
                                "[P:0] {input} [P:5]",           // zero
                                "[P:5 {input}"}) {               // unclosed
    INFO("template " << bad);
    const std::string message = test::error_message([&] {
      demo.create({"num_virtual_tokens=5", "template=" + bad});
    });
    CHECK(contains(message, "template"));
    CHECK(contains(message, bad));
  }
  // the host's own reading of a template the plugin accepts agrees with it
  auto ok = demo.create({"num_virtual_tokens=5", "template=Q: [P:1] {input} A: [P:4] {output}"});
  CHECK_NOTHROW(trainer::parse_template(ok->template_text(), 5));
}
