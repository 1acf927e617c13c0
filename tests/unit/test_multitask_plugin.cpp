// The multitask_prompt_tuning plugin (peft-spec §2.4) on the bundled demo model: every
// initialisation checked exactly against its definition, a batch mixing tasks, export and
// import, and the source → target flow end to end with the trainer (the target keeps
// working once its source adapter is gone).
#include <catch.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <set>

#include "host/plugin/method_instance.h"
#include "host/plugin/method_options.h"
#include "host/plugin/plugin_discovery.h"
#include "host/plugin/status.h"
#include "host/trainer/adapter_files.h"
#include "host/trainer/adapter_loading.h"
#include "host/trainer/trainer.h"
#include "models/common/error.h"
#include "models/generate/generate.h"
#include "models/loader/safetensors.h"
#include "models/tokenizer/tokenizer.h"
#include "test_support.h"

using namespace ph;
namespace fs = std::filesystem;
using Catch::Contains;

namespace {

constexpr int kT = 5, kR = 2;  // virtual tokens and ranks of most cases

struct Demo {
  Demo()
      : model(load_model(test::source_path("models/demo/hf"))),
        tokenizer(load_tokenizer(test::source_path("models/demo/hf"))),
        host(model, tokenizer.get()) {}
  Model model;
  std::unique_ptr<Tokenizer> tokenizer;
  host::ModelHost host;
};

Demo& demo() {
  static Demo d;
  return d;
}

int dim() {
  return demo().model.config.dim;
}

std::unique_ptr<host::MethodInstance> make(nlohmann::json config, uint64_t seed = 3,
                                           bool for_import = false) {
  auto library = host::find_plugin("multitask_prompt_tuning", {});
  if (!config.contains("num_virtual_tokens")) config["num_virtual_tokens"] = kT;
  const auto options = host::resolve_options(library->descriptor(), config, {});
  return std::make_unique<host::MethodInstance>(library, demo().host, options, seed, for_import);
}

const host::ParameterView& param(const host::MethodInstance& m, const std::string& name) {
  for (const auto& p : m.parameters())
    if (p.name == name) return p;
  FAIL("no parameter " << name);
  throw 0;
}

std::vector<float> values(const host::MethodInstance& m, const std::string& name) {
  const auto& p = param(m, name);
  return std::vector<float>(p.value, p.value + p.numel);
}

std::vector<float> normal(uint64_t seed, uint64_t stream, float std, size_t n) {
  const auto* rng = static_cast<const ph_host_random*>(
      host::base_host()->get_service(host::base_host(), PH_SERVICE_RANDOM));
  std::vector<float> v(n);
  std::vector<int64_t> shape = {(int64_t)n};
  DLTensor t{};
  t.data = v.data();
  t.device = {kDLCPU, 0};
  t.ndim = 1;
  t.dtype = {kDLFloat, 32, 1};
  t.shape = shape.data();
  REQUIRE(rng->fill_normal(host::base_host(), seed, stream, 0.0f, std, &t) == nullptr);
  return v;
}

// A source adapter of `tasks` tasks with values that are multiples of 1/4 (so that every
// mean is exact in float32), written with write_safetensors into a folder.
struct Source {
  std::string dir, file;
  int tasks;
  std::vector<float> embedding, cols, rows;
};

Source write_source(int tasks, int T = kT, int R = kR) {
  Source s;
  s.dir = test::temp_dir("multitask_source_" + std::to_string(tasks) + "_" + std::to_string(T));
  s.file = s.dir + "/adapter_model.safetensors";
  s.tasks = tasks;
  const int D = dim();
  auto fill = [](std::vector<float>& v, size_t n, int salt) {
    v.resize(n);
    for (size_t i = 0; i < n; ++i) v[i] = 0.25f * (float)((int)((i * 7 + salt * 13) % 17) - 8);
  };
  fill(s.embedding, (size_t)T * D, 1);
  fill(s.cols, (size_t)tasks * T * R, 2);
  fill(s.rows, (size_t)tasks * R * D, 3);
  write_safetensors(s.file, {f32_tensor("prompt_embeddings", {T, D}, s.embedding.data()),
                             f32_tensor("prefix_task_cols", {tasks, T, R}, s.cols.data()),
                             f32_tensor("prefix_task_rows", {tasks, R, D}, s.rows.data())});
  return s;
}

// E ⊙ (cols[t] @ rows[t]) computed in double: [T, D] of one task.
std::vector<double> expected_prompt(const std::vector<float>& e, const std::vector<float>& c,
                                    const std::vector<float>& r, int t, int T, int R, int D) {
  std::vector<double> out((size_t)T * D);
  for (int i = 0; i < T; ++i)
    for (int d = 0; d < D; ++d) {
      double w = 0.0;
      for (int k = 0; k < R; ++k)
        w += (double)c[((size_t)t * T + i) * R + k] * r[((size_t)t * R + k) * D + d];
      out[(size_t)i * D + d] = e[(size_t)i * D + d] * w;
    }
  return out;
}

void check_close(const float* got, const std::vector<double>& want, double tol = 1e-5) {
  double diff = 0.0, ref = 0.0;
  for (size_t i = 0; i < want.size(); ++i) {
    diff += (got[i] - want[i]) * (got[i] - want[i]);
    ref += want[i] * want[i];
  }
  INFO("relative L2 " << std::sqrt(diff / ref));
  CHECK(std::sqrt(diff / ref) <= tol);
}

}  // namespace

TEST_CASE("multitask: RANDOM init is N(0,1) for the prompt, N(0,0.02) for the task tables",
          "[multitask]") {
  const auto m = make({{"num_tasks", 3}, {"num_ranks", kR}}, 11);
  const ph_injection_spec spec = m->injection();
  CHECK(spec.n_virtual == kT);
  CHECK(spec.per_example == 1);
  CHECK(spec.n_prefix == 0);
  CHECK(m->template_text().empty());
  REQUIRE(m->parameters().size() == 3);
  CHECK(param(*m, "embedding.weight").shape == std::vector<int64_t>{kT, dim()});
  CHECK(param(*m, "prefix_task_cols").shape == std::vector<int64_t>{3, kT, kR});
  CHECK(param(*m, "prefix_task_rows").shape == std::vector<int64_t>{3, kR, dim()});
  CHECK(values(*m, "embedding.weight") == normal(11, 0, 1.0f, (size_t)kT * dim()));
  CHECK(values(*m, "prefix_task_cols") == normal(11, 1, 0.02f, (size_t)3 * kT * kR));
  CHECK(values(*m, "prefix_task_rows") == normal(11, 2, 0.02f, (size_t)3 * kR * dim()));
  // another seed, other values
  CHECK(values(*make({{"num_tasks", 3}, {"num_ranks", kR}}, 12), "embedding.weight") !=
        values(*m, "embedding.weight"));
}

TEST_CASE("multitask: TEXT init copies the text's token embeddings, tiled to T", "[multitask]") {
  const std::string text = "The computer";
  const auto m = make({{"prompt_tuning_init", "TEXT"}, {"prompt_tuning_init_text", text}}, 5);
  const std::vector<int32_t> ids = demo().tokenizer->encode(text);
  REQUIRE(!ids.empty());
  REQUIRE((int)ids.size() < kT);  // so tiling is exercised
  const int D = dim();
  std::vector<float> want((size_t)kT * D);
  for (int i = 0; i < kT; ++i)
    for (int d = 0; d < D; ++d)
      want[(size_t)i * D + d] = demo().model.token_embedding[(size_t)ids[i % ids.size()] * D + d];
  CHECK(values(*m, "embedding.weight") == want);
  CHECK(values(*m, "prefix_task_cols") == normal(5, 1, 0.02f, (size_t)kT));
  CHECK_THAT(test::error_message([] {
               make({{"prompt_tuning_init", "TEXT"}});
             }),
             Contains("prompt_tuning_init_text"));
}

TEST_CASE("multitask: the source inits copy exactly what peft-spec §2.4 says", "[multitask]") {
  const Source src = write_source(4);
  const int D = dim();
  const size_t TR = (size_t)kT * kR, RD = (size_t)kR * D;
  for (const std::string& path : {src.dir, src.file}) {
    INFO("source " << path);
    SECTION("AVERAGE_SOURCE_TASKS" + std::string(path == src.dir ? " (folder)" : " (file)")) {
      const auto m = make({{"num_ranks", kR},
                           {"prompt_tuning_init", "AVERAGE_SOURCE_TASKS"},
                           {"prompt_tuning_init_state_dict_path", path}});
      std::vector<float> cols(TR), rows(RD);
      for (size_t k = 0; k < TR; ++k) {
        float sum = 0;  // multiples of 1/4: exact in any order
        for (int s = 0; s < 4; ++s) sum += src.cols[s * TR + k];
        cols[k] = sum / 4;
      }
      for (size_t k = 0; k < RD; ++k) {
        float sum = 0;
        for (int s = 0; s < 4; ++s) sum += src.rows[s * RD + k];
        rows[k] = sum / 4;
      }
      CHECK(values(*m, "embedding.weight") == src.embedding);
      CHECK(values(*m, "prefix_task_cols") == cols);
      CHECK(values(*m, "prefix_task_rows") == rows);
    }
    SECTION("EXACT_SOURCE_TASK" + std::string(path == src.dir ? " (folder)" : " (file)")) {
      for (int task = 0; task < 4; ++task) {
        const auto m = make({{"num_ranks", kR},
                             {"prompt_tuning_init", "EXACT_SOURCE_TASK"},
                             {"prompt_tuning_init_task", task},
                             {"prompt_tuning_init_state_dict_path", path}});
        CHECK(values(*m, "embedding.weight") == src.embedding);
        CHECK(values(*m, "prefix_task_cols") ==
              std::vector<float>(src.cols.begin() + task * TR, src.cols.begin() + (task + 1) * TR));
        CHECK(values(*m, "prefix_task_rows") ==
              std::vector<float>(src.rows.begin() + task * RD, src.rows.begin() + (task + 1) * RD));
      }
    }
    SECTION("ONLY_SOURCE_SHARED" + std::string(path == src.dir ? " (folder)" : " (file)")) {
      // any number of tasks; the task tables keep their random init
      const auto m = make({{"num_tasks", 3},
                           {"num_ranks", kR},
                           {"prompt_tuning_init", "ONLY_SOURCE_SHARED"},
                           {"prompt_tuning_init_state_dict_path", path}},
                          21);
      CHECK(values(*m, "embedding.weight") == src.embedding);
      CHECK(values(*m, "prefix_task_cols") == normal(21, 1, 0.02f, 3 * TR));
      CHECK(values(*m, "prefix_task_rows") == normal(21, 2, 0.02f, 3 * RD));
    }
  }
}

TEST_CASE("multitask: source init errors name the option, the file and the tensor", "[multitask]") {
  const Source src = write_source(4);
  auto cfg = [&](const std::string& init) {
    return nlohmann::json{{"num_ranks", kR},
                          {"prompt_tuning_init", init},
                          {"prompt_tuning_init_state_dict_path", src.dir}};
  };
  for (const char* init : {"AVERAGE_SOURCE_TASKS", "EXACT_SOURCE_TASK", "ONLY_SOURCE_SHARED"}) {
    INFO(init);
    auto c = cfg(init);
    c.erase("prompt_tuning_init_state_dict_path");
    CHECK_THAT(test::error_message([&] { make(c); }),
               Contains("prompt_tuning_init_state_dict_path"));
  }
  for (const char* init : {"AVERAGE_SOURCE_TASKS", "EXACT_SOURCE_TASK"}) {
    auto c = cfg(init);
    c["num_tasks"] = 2;
    CHECK_THAT(test::error_message([&] { make(c); }),
               Contains("num_tasks") && Contains("must be 1"));
  }
  auto c = cfg("EXACT_SOURCE_TASK");
  c["prompt_tuning_init_task"] = 4;
  CHECK_THAT(test::error_message([&] { make(c); }),
             Contains("prompt_tuning_init_task") && Contains("4 tasks") && Contains(src.dir));
  c = cfg("EXACT_SOURCE_TASK");
  c["num_virtual_tokens"] = kT + 1;
  CHECK_THAT(test::error_message([&] { make(c); }),
             Contains("prompt_tuning_init_state_dict_path") && Contains("prompt_embeddings") &&
                 Contains(src.dir));
  c = cfg("AVERAGE_SOURCE_TASKS");
  c["num_ranks"] = kR + 1;
  CHECK_THAT(test::error_message([&] { make(c); }),
             Contains("prefix_task_cols") && Contains("[4, 5, 2]") && Contains("[*, 5, 3]"));
  const std::string missing = test::temp_dir("multitask_missing") + "/gone";
  c = cfg("EXACT_SOURCE_TASK");
  c["prompt_tuning_init_state_dict_path"] = missing;
  CHECK_THAT(test::error_message([&] { make(c); }), Contains(missing));
  // a source without task tables: ONLY_SOURCE_SHARED is fine, EXACT_SOURCE_TASK names the tensor
  const std::string pt = test::temp_dir("multitask_pt_source") + "/pt.safetensors";
  write_safetensors(pt, {f32_tensor("prompt_embeddings", {kT, dim()}, src.embedding.data())});
  c = cfg("ONLY_SOURCE_SHARED");
  c["prompt_tuning_init_state_dict_path"] = pt;
  CHECK(values(*make(c), "embedding.weight") == src.embedding);
  c["prompt_tuning_init"] = "EXACT_SOURCE_TASK";
  CHECK_THAT(test::error_message([&] { make(c); }), Contains(pt) && Contains("prefix_task_cols"));
  // made for import: the source is not read at all (the import overwrites everything)
  c = cfg("EXACT_SOURCE_TASK");
  c["prompt_tuning_init_state_dict_path"] = missing;
  CHECK_NOTHROW(make(c, 1, true));
}

TEST_CASE("multitask: each example of a mixed batch uses its own task's factors", "[multitask]") {
  const int S = 3, D = dim();
  const auto m = make({{"num_tasks", S}, {"num_ranks", kR}}, 9);
  // larger task tables than the init's, so the products are far from zero
  for (const auto& p : m->parameters()) {
    const auto v = normal(100, p.name.size(), 1.0f, p.numel);
    std::copy(v.begin(), v.end(), p.value);
  }
  const auto e = values(*m, "embedding.weight"), c = values(*m, "prefix_task_cols"),
             r = values(*m, "prefix_task_rows");
  const std::vector<int64_t> tasks = {2, 0, 1, 2, 0};
  const int B = (int)tasks.size();
  const Injection inj = m->forward(B, tasks, true);
  REQUIRE(inj.virtual_tokens.shape(0) == (size_t)B);
  REQUIRE(inj.virtual_tokens.shape(1) == (size_t)kT);
  REQUIRE(inj.virtual_tokens.shape(2) == (size_t)D);
  for (int b = 0; b < B; ++b) {
    INFO("example " << b << ", task " << tasks[b]);
    check_close(inj.virtual_tokens.data() + (size_t)b * kT * D,
                expected_prompt(e, c, r, (int)tasks[b], kT, kR, D));
  }
  // tasks differ, so examples of different tasks differ
  CHECK(!std::equal(inj.virtual_tokens.data(), inj.virtual_tokens.data() + kT * D,
                    inj.virtual_tokens.data() + kT * D));
  // no task ids: task 0 for every example
  const Injection none = m->forward(2, {}, false);
  for (int b = 0; b < 2; ++b)
    check_close(none.virtual_tokens.data() + (size_t)b * kT * D,
                expected_prompt(e, c, r, 0, kT, kR, D));
  // a task id beyond num_tasks is an error naming it
  CHECK_THAT(test::error_message([&] {
               m->forward(2, {0, 3}, false);
             }),
             Contains("task id 3") && Contains("num_tasks = 3"));

  // backward: the gradients of out[b] = E ⊙ (cols[t_b] @ rows[t_b]) for a random G
  InjectionGrad g;
  g.virtual_tokens = xt::zeros<float>({(size_t)B, (size_t)kT, (size_t)D});
  const auto gv = normal(200, 0, 1.0f, g.virtual_tokens.size());
  std::copy(gv.begin(), gv.end(), g.virtual_tokens.begin());
  std::vector<double> ge((size_t)kT * D, 0.0), gc(c.size(), 0.0), gr(r.size(), 0.0);
  for (int b = 0; b < B; ++b) {
    const int t = (int)tasks[b];
    for (int i = 0; i < kT; ++i)
      for (int d = 0; d < D; ++d) {
        double w = 0.0;
        for (int k = 0; k < kR; ++k)
          w += (double)c[((size_t)t * kT + i) * kR + k] * r[((size_t)t * kR + k) * D + d];
        const double gb = gv[((size_t)b * kT + i) * D + d];
        ge[(size_t)i * D + d] += gb * w;
        const double gw = gb * e[(size_t)i * D + d];
        for (int k = 0; k < kR; ++k) {
          gc[((size_t)t * kT + i) * kR + k] += gw * r[((size_t)t * kR + k) * D + d];
          gr[((size_t)t * kR + k) * D + d] += gw * c[((size_t)t * kT + i) * kR + k];
        }
      }
  }
  m->zero_grad();
  m->backward(B, tasks, g);
  check_close(param(*m, "embedding.weight").grad, ge);
  check_close(param(*m, "prefix_task_cols").grad, gc);
  check_close(param(*m, "prefix_task_rows").grad, gr);
  // backward accumulates
  m->backward(B, tasks, g);
  for (auto& x : gc) x *= 2;
  check_close(param(*m, "prefix_task_cols").grad, gc);
}

TEST_CASE("multitask: export has PEFT's layout and import restores it, shape-checked",
          "[multitask]") {
  const auto m = make({{"num_tasks", 3}, {"num_ranks", kR}}, 4);
  const auto a = m->export_adapter();
  REQUIRE(a.tensors.size() == 3);
  CHECK(a.tensors.at("prompt_embeddings").first == std::vector<int64_t>{kT, dim()});
  CHECK(a.tensors.at("prompt_embeddings").second == values(*m, "embedding.weight"));
  CHECK(a.tensors.at("prefix_task_cols").first == std::vector<int64_t>{3, kT, kR});
  CHECK(a.tensors.at("prefix_task_rows").first == std::vector<int64_t>{3, kR, dim()});
  std::set<std::string> keys;
  for (auto it = a.config.begin(); it != a.config.end(); ++it) keys.insert(it.key());
  CHECK(keys == std::set<std::string>{
                    "num_virtual_tokens", "num_tasks", "num_ranks", "prompt_tuning_init",
                    "prompt_tuning_init_text", "prompt_tuning_init_state_dict_path",
                    "prompt_tuning_init_task", "tokenizer_name_or_path", "tokenizer_kwargs",
                    // PEFT's fields for the model and task type (ABI 1.1)
                    "task_type", "num_transformer_submodules", "token_dim", "num_layers",
                    "num_attention_heads"});
  CHECK(a.config["num_tasks"] == 3);
  CHECK(a.config["num_ranks"] == kR);
  CHECK(a.config["prompt_tuning_init"] == "RANDOM");
  CHECK(a.config["tokenizer_kwargs"].is_null());

  const auto b = make({{"num_tasks", 3}, {"num_ranks", kR}}, 99, true);
  b->import_adapter(a);
  for (const char* name : {"embedding.weight", "prefix_task_cols", "prefix_task_rows"})
    CHECK(values(*b, name) == values(*m, name));
  const auto one = make({{"num_tasks", 1}, {"num_ranks", kR}}, 99, true);
  const auto before = values(*one, "embedding.weight");
  CHECK_THAT(
      test::error_message([&] { one->import_adapter(a); }),
      Contains("prefix_task_cols is [3, 5, 2], expected [1, 5, 2]") && Contains("num_tasks"));
  CHECK(values(*one, "embedding.weight") == before);  // untouched
}

TEST_CASE("multitask: source training, then a target from the source; the target outlives it",
          "[multitask][trainer]") {
  const std::string work = test::temp_dir("multitask_flow");
  // the first 32 lines of the source data: all four tasks
  const std::string data = work + "/source.jsonl";
  {
    std::ifstream in(test::source_path("models/demo/tasks/multitask-source/train.jsonl"));
    std::ofstream out(data);
    std::string line;
    for (int i = 0; i < 32 && std::getline(in, line); ++i) out << line << "\n";
  }
  auto run = [&](const std::string& out, const std::string& data_file) {
    trainer::TrainConfig c;
    c.plugin = "multitask_prompt_tuning";
    c.model = test::source_path("models/demo/hf");
    c.data = data_file;
    c.output_dir = out;
    c.max_steps = 4;
    c.batch_size = 8;
    c.lr = 0.03;
    c.seed = 5;
    c.threads = 1;
    c.quiet = true;
    c.eval_generate = false;
    return c;
  };
  const std::string source = work + "/source";
  trainer::TrainConfig sc = run(source, data);
  sc.set = {"num_virtual_tokens=4", "num_tasks=4", "num_ranks=2"};
  const trainer::TrainSummary ss = trainer::train(sc);
  CHECK(ss.steps == 4);
  const trainer::AdapterInfo si = trainer::read_adapter_info(source);
  CHECK(si.task_names ==
        std::vector<std::string>{"computers", "politics", "science", "songs-poems"});
  CHECK(si.peft_config["peft_type"] == "MULTITASK_PROMPT_TUNING");
  CHECK(si.peft_config["num_tasks"] == 4);
  const SafetensorsFile sf(source + "/" + trainer::kAdapterModelFile);
  CHECK(sf.info("prefix_task_cols").shape == std::vector<int64_t>{4, 4, 2});
  CHECK(sf.info("prefix_task_rows").shape == std::vector<int64_t>{4, 2, dim()});

  // the target starts exactly from source task 2 ("science"): a run that does not move
  const std::string target_data =
      test::source_path("models/demo/tasks/multitask-target/train.jsonl");
  auto target_config = [&](const std::string& out) {
    trainer::TrainConfig tc = run(out, target_data);
    tc.set = {"num_virtual_tokens=4", "num_ranks=2", "prompt_tuning_init=EXACT_SOURCE_TASK",
              "prompt_tuning_init_task=2", "prompt_tuning_init_state_dict_path=" + source};
    return tc;
  };
  trainer::TrainConfig still = target_config(work + "/still");
  still.max_steps = 1;
  still.lr = 0.0;
  trainer::train(still);
  {
    const SafetensorsFile tf(still.output_dir + "/" + trainer::kAdapterModelFile);
    auto floats = [](const SafetensorsFile& f, const std::string& name) {
      const FloatTensor t = f.to_float(name);
      return std::vector<float>(t.data, t.data + t.numel);
    };
    CHECK(floats(tf, "prompt_embeddings") == floats(sf, "prompt_embeddings"));
    const auto cols = floats(sf, "prefix_task_cols"), rows = floats(sf, "prefix_task_rows");
    CHECK(floats(tf, "prefix_task_cols") ==
          std::vector<float>(cols.begin() + 2 * 8, cols.begin() + 3 * 8));
    CHECK(floats(tf, "prefix_task_rows") ==
          std::vector<float>(rows.begin() + 2 * 2 * dim(), rows.begin() + 3 * 2 * dim()));
  }

  // the real target run, then the source goes away
  const std::string target = work + "/target";
  const trainer::TrainSummary ts = trainer::train(target_config(target));
  CHECK(ts.steps == 4);
  const trainer::AdapterInfo ti = trainer::read_adapter_info(target);
  CHECK(ti.task_names == std::vector<std::string>{"zippy"});
  // PEFT's config names no source (PEFT would read it again at every load); PromptHost's
  // record keeps the options as given
  CHECK(ti.peft_config["prompt_tuning_init"] == "RANDOM");
  CHECK(ti.peft_config["prompt_tuning_init_state_dict_path"].is_null());
  CHECK(ti.options["prompt_tuning_init"] == "EXACT_SOURCE_TASK");
  CHECK(ti.options["prompt_tuning_init_state_dict_path"] == source);
  CHECK(ti.peft_config["prompt_tuning_init_task"] == 2);
  CHECK(ti.peft_config["num_tasks"] == 1);
  fs::rename(source, work + "/source-moved");
  REQUIRE(!fs::exists(source));

  trainer::LoadedAdapter a = trainer::open_adapter(target, demo().host, {});
  const Injection inj = a.method->forward(1, {0}, false);
  const SafetensorsFile tf(target + "/" + trainer::kAdapterModelFile);
  const FloatTensor e = tf.to_float("prompt_embeddings");
  const FloatTensor c = tf.to_float("prefix_task_cols");
  const FloatTensor r = tf.to_float("prefix_task_rows");
  check_close(inj.virtual_tokens.data(),
              expected_prompt(std::vector<float>(e.data, e.data + e.numel),
                              std::vector<float>(c.data, c.data + c.numel),
                              std::vector<float>(r.data, r.data + r.numel), 0, 4, 2, dim()));
  // and it generates
  const InjectionCache cache(demo().model, inj);
  std::vector<int32_t> prompt = demo().tokenizer->encode("I like");
  const int bos =
      demo().model.config.bos_id >= 0 ? demo().model.config.bos_id : demo().tokenizer->bos_id();
  if (bos >= 0) prompt.insert(prompt.begin(), bos);
  GenerateOptions o;
  o.max_new_tokens = 8;
  o.sampling.temperature = 0.0f;
  const std::vector<int32_t> out = generate(demo().model, cache, prompt, o);
  CHECK(!out.empty());
  for (int32_t t : out) CHECK((t >= 0 && t < demo().model.config.vocab_size));
}
