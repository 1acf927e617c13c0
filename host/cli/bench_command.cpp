// `prompthost bench`: time a training step or decoding on a model shape with random
// weights, printing one JSON line with the keys of bench/torch_baseline.py so the two
// compare directly (same shapes, workloads and definitions).
#include <sys/resource.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <boost/program_options.hpp>
#include <nlohmann/json.hpp>
#include <xtensor/xview.hpp>

#include "host/cli/bench_decode_batch.h"
#include "host/cli/bench_serve.h"
#include "host/cli/commands.h"
#include "host/plugin/method_instance.h"
#include "host/plugin/method_options.h"
#include "host/plugin/plugin_discovery.h"
#include "host/trainer/optimizer.h"
#include "host/trainer/option_checks.h"
#include "host/trainer/ranks.h"
#include "models/common/error.h"
#include "models/engine/engine.h"
#include "models/engine/isa.h"
#include "models/engine/machine.h"
#include "models/loader/random_model.h"

namespace ph::cli {

namespace {

namespace po = boost::program_options;
using Clock = std::chrono::steady_clock;

// The shapes of torch_baseline.py.
ModelConfig shape_config(const std::string& name) {
  ModelConfig c;
  if (name == "gpt2-small") {
    set_family(c, Arch::kGpt2);
    c.n_layers = 12, c.dim = 768, c.n_heads = 12, c.n_kv_heads = 12, c.head_dim = 64;
    c.ffn_dim = 3072, c.vocab_size = 50257, c.max_positions = 1024, c.tied_head = true;
  } else if (name == "smollm2-135m") {
    c.n_layers = 30, c.dim = 576, c.n_heads = 9, c.n_kv_heads = 3, c.head_dim = 64;
    c.ffn_dim = 1536, c.vocab_size = 49152, c.max_positions = 2048, c.rope_theta = 100000.0f;
    c.tied_head = true;
  } else if (name == "tiny-llama") {
    c.n_layers = 4, c.dim = 128, c.n_heads = 4, c.n_kv_heads = 2, c.head_dim = 32;
    c.ffn_dim = 344, c.vocab_size = 1024, c.max_positions = 512;
  } else if (name == "roberta-base") {  // a SEQ_CLS encoder: --workload cls
    set_family(c, Arch::kRoberta);
    c.n_layers = 12, c.dim = 768, c.n_heads = 12, c.n_kv_heads = 12, c.head_dim = 64;
    c.ffn_dim = 3072, c.vocab_size = 50265, c.max_positions = 512, c.norm_eps = 1e-5f;
    c.labels = {"LABEL_0", "LABEL_1"};
  } else if (name == "t5-base") {  // T5 v1.0 base: relu feed-forward, tied head, 12 + 12 layers
    set_family(c, Arch::kT5);
    c.n_layers = 12, c.n_decoder_layers = 12, c.dim = 768, c.n_heads = 12, c.n_kv_heads = 12;
    c.head_dim = 64, c.ffn_dim = 3072, c.vocab_size = 32128, c.max_positions = 512;
    c.tied_head = true, c.decoder_start_id = 0, c.eos_id = 1, c.pad_id = 0;
  } else {
    throw Error("--shape: expected gpt2-small, smollm2-135m, tiny-llama, roberta-base or t5-base, got \"" +
                name + "\"");
  }
  return c;
}

double peak_rss_mb() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss / 1024.0;
}

double round2(double v) {
  return std::round(v * 100) / 100;
}

// CPU time of the whole process (all threads), seconds: per step, it shows work done
// independently of how much of the machine other jobs take.
double process_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
}

// Bytes of frozen weights one decoded token reads: every projection of every layer and
// the output head (norm gains and the one embedding row are negligible).
double weight_bytes_per_token(const ModelConfig& c) {
  const double pre_width = c.arch == Arch::kLlama ? 2.0 * c.ffn_dim : c.ffn_dim;
  const double layer = (double)c.dim * c.qkv_dim() + (double)c.q_dim() * c.dim + c.dim * pre_width +
                       (double)c.ffn_dim * c.dim;
  return 4.0 * (c.n_layers * layer + (double)c.vocab_size * c.dim);
}

// --streams: "1,4,16,64".
std::vector<int> parse_streams(const std::string& text) {
  std::vector<int> out;
  std::stringstream in(text);
  for (std::string word; std::getline(in, word, ',');) {
    if (word.empty() || word.size() > 4 || word.find_first_not_of("0123456789") != std::string::npos ||
        std::stoi(word) < 1)
      throw trainer::OptionError("--streams: \"" + word + "\" is not a count from 1 to 9999");
    out.push_back(std::stoi(word));
  }
  if (out.empty()) throw trainer::OptionError("--streams is empty");
  return out;
}

}  // namespace

int bench_command(int argc, char** argv) {
  std::string shape, plugin, workload, model_path, seed_text, isa_text;
  int batch = 8, seq = 128, virt = 20, steps = 10, warmup = 2, threads = 2, new_tokens = 64;
  uint64_t seed = 0;
  ServeBenchOptions serve;
  std::string streams_text = "1,4,16,64";
  po::options_description desc("Options");
  // clang-format off
  desc.add_options()
    ("help,h", "show this help and exit")
    ("shape", po::value(&shape)->default_value("gpt2-small"), "gpt2-small, smollm2-135m, tiny-llama, roberta-base or t5-base (random weights; roberta-base: SEQ_CLS, cls workload only; t5-base: SEQ_2_SEQ_LM, lm workload only)")
    ("model", po::value(&model_path), "a real model instead of --shape")
    ("plugin", po::value(&plugin)->default_value("prompt_tuning"), "prompt_tuning or prefix_tuning (with its MLP, hidden 512, as the baseline)")
    ("workload", po::value(&workload)->default_value("lm"), "lm (every token labelled), cls (lengths in [seq/4, seq], last 2 labelled; encoders: one class each, the head trained too), generate (batch 1 greedy decoding), serve (continuous batching of --streams concurrent requests over --adapters adapters, --seq prompt tokens and --new tokens each, next to the same requests one at a time), decode-batch (BatchDecoder steps over 1, 4, 16, 64 sequences up to --batch, caches of --seq positions, --new timed steps)")
    ("batch", po::value(&batch)->default_value(8), "examples per step")
    ("seq", po::value(&seq)->default_value(128), "text tokens per example (the prompt for generate)")
    ("virtual", po::value(&virt)->default_value(20), "virtual tokens / prefix length")
    ("steps", po::value(&steps)->default_value(10), "timed steps")
    ("warmup", po::value(&warmup)->default_value(2), "untimed steps first")
    ("threads", po::value(&threads)->default_value(2), "engine threads")
    ("new", po::value(&new_tokens)->default_value(64), "tokens to generate (generate)")
    ("seed", po::value(&seed_text)->default_value("0"), "seed of the weights and data")
    ("isa", po::value(&isa_text), "the kernels' instruction set: x86-64-v2, x86-64-v3 or x86-64-v4 (default: $PROMPTHOST_ISA, else the CPU's widest)")
    ("streams", po::value(&streams_text)->default_value(streams_text), "serve: the concurrent requests of each level, comma-separated")
    ("adapters", po::value(&serve.adapters)->default_value(serve.adapters), "serve: adapters the requests use in turn (random prompt-tuning and prefix injections of --virtual tokens)");
  // clang-format on
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(argc, argv).options(desc).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    std::fprintf(stderr, "prompthost bench: %s\n", e.what());
    return kExitUsage;
  }
  if (vm.count("help")) {
    std::cout << "Usage: prompthost bench [OPTIONS]\n\nTimes training steps (or decoding) and "
                 "prints one JSON line with the keys of\nbench/torch_baseline.py.\n\n"
              << desc
              << "\nExample:\n  prompthost bench --shape gpt2-small --plugin prompt_tuning "
                 "--workload lm --batch 8 --seq 128 --virtual 20\n";
    return kExitOk;
  }
  try {  // every option's range, before any model is made
    if (model_path.empty())
      trainer::check_choice("--shape", shape,
                            {"gpt2-small", "smollm2-135m", "tiny-llama", "roberta-base", "t5-base"});
    trainer::check_choice("--workload", workload, {"lm", "cls", "generate", "decode-batch", "serve"});
    if (model_path.empty() && shape_config(shape).stacks == Stacks::kEncoder && workload != "cls")
      throw trainer::OptionError("--workload must be cls for " + shape +
                                 " (a classifier), got " + workload);
    trainer::check_int("--batch", batch, 1);
    trainer::check_int("--seq", seq, workload == "cls" ? 4 : 1);  // cls: lengths from seq/4 up
    trainer::check_int("--virtual", virt, 1);
    trainer::check_int("--steps", steps, 1);
    trainer::check_int("--warmup", warmup, 0);
    trainer::check_int("--threads", threads, 0, trainer::kMaxThreads);
    trainer::check_int("--new", new_tokens, 1);
    seed = trainer::parse_seed("--seed", seed_text);
    if (!isa_text.empty())
      trainer::check_choice("--isa", isa_text, {"x86-64-v2", "x86-64-v3", "x86-64-v4"});
    serve.streams = parse_streams(streams_text);
    trainer::check_int("--adapters", serve.adapters, 1);
  } catch (const trainer::OptionError& e) {
    std::fprintf(stderr, "prompthost bench: %s\n", e.what());
    return kExitUsage;
  }
  try {
    set_num_threads(threads);
    if (!isa_text.empty()) set_isa(parse_isa(isa_text));  // refused if the CPU lacks it
    const Model model =
        model_path.empty() ? make_random_model(shape_config(shape), seed) : load_model(model_path);
    const ModelConfig& c = model.config;
    const bool encoder = c.stacks == Stacks::kEncoder;
    if (encoder && workload != "cls")
      throw Error("--workload " + workload + ": a " + arch_name(c.arch) +
                  " model is a classifier; use --workload cls");
    auto library = host::find_plugin(plugin, {});
    std::vector<std::string> sets = {"num_virtual_tokens=" + std::to_string(virt)};
    if (library->descriptor().name == std::string("prefix_tuning"))
      sets.insert(sets.end(), {"prefix_projection=true", "encoder_hidden_size=512"});
    const auto options =
        host::resolve_options(library->descriptor(), nlohmann::json::object(), sets);
    host::ModelHost model_host(model, nullptr);
    host::MethodInstance method(library, model_host, options, seed);
    const ph_injection_spec spec = method.injection();

    std::mt19937_64 rng(seed + 1);
    auto token = [&] { return (int32_t)(rng() % c.vocab_size); };
    nlohmann::json out = {{"impl", "prompthost-" PROMPTHOST_VERSION},
                          {"shape", model_path.empty() ? shape : model_path},
                          {"method", library->descriptor().name},
                          {"threads", threads},
                          {"isa", isa_name(active_isa())}};

    const bool seq2seq = c.stacks == Stacks::kEncoderDecoder;
    if (seq2seq && workload != "lm")
      throw Error("--workload " + workload + ": an encoder-decoder is benchmarked with --workload lm");
    if (workload == "decode-batch") {
      out.update(bench_decode_batch(model, batch, seq, warmup, new_tokens, seed));
    } else if (workload == "serve") {
      serve.virtual_tokens = virt, serve.prompt_tokens = seq, serve.new_tokens = new_tokens;
      serve.seed = seed;
      out.update(bench_serve(model, serve, weight_bytes_per_token(c)));
    } else if (workload == "generate") {
      std::vector<int32_t> prompt;
      for (int k = 0; k < spec.n_virtual; ++k) prompt.push_back(virtual_slot(k));
      for (int t = 0; t < seq; ++t) prompt.push_back(token());
      const Injection inj = method.forward(1, {}, false);
      xt::xtensor<float, 2> rows;
      if (inj.virtual_tokens.size())
        rows = xt::xtensor<float, 2>(xt::view(inj.virtual_tokens, 0, xt::all(), xt::all()));
      auto decode = [&](int n) {
        KVCache cache =
            make_kv_cache(model, std::min(c.max_positions, (int)prompt.size() + spec.n_prefix + n));
        append_prefix(cache, inj.prefix);
        append_adapters(model, cache, inj);
        auto logits = extend(model, cache, prompt, rows);
        for (int i = 1; i < n; ++i) {
          const int32_t next =
              (int32_t)(std::max_element(logits.begin(), logits.end()) - logits.begin());
          logits = extend(model, cache, {next});
        }
      };
      for (int w = 0; w < warmup; ++w) decode(2);
      const auto t0 = Clock::now();
      decode(new_tokens);
      const double dt = std::chrono::duration<double>(Clock::now() - t0).count();
      // The bandwidth bound: each decoded token streams all weights once. (Peak RSS is
      // taken before the measurement's buffer exists.)
      out["peak_rss_mb"] = std::round(peak_rss_mb() * 10) / 10;
      const double bytes = weight_bytes_per_token(c), gbps = measure_read_gbps();
      out.update({{"workload", "generate"},
                  {"prompt_tokens", seq},
                  {"virtual", virt},
                  {"new_tokens", new_tokens},
                  {"tokens_per_s", round2(new_tokens / dt)},
                  {"weight_mb_per_token", round2(bytes / 1e6)},
                  {"read_gbps", round2(gbps)},
                  {"bandwidth_fraction", round2(new_tokens / dt * bytes / (gbps * 1e9))}});
    } else {  // lm or cls
      std::vector<Sequence> data(batch);
      long real_tokens = 0;
      std::uniform_int_distribution<int> len_dist(seq / 4, seq);
      // Encoder-decoders (SEQ_2_SEQ_LM): the encoder reads the virtual tokens and seq text
      // tokens, the decoder max(1, seq/4) tokens, every decoder label scored.
      const int decoder_len = std::max(1, seq / 4);
      for (auto& s : data) {
        if (seq2seq) {
          for (int k = 0; k < spec.n_virtual; ++k) s.tokens.push_back(virtual_slot(k));
          for (int t = 0; t < seq; ++t) s.tokens.push_back(token());
          s.decoder_tokens.push_back(c.decoder_start_id);
          for (int t = 0; t < decoder_len; ++t) s.decoder_labels.push_back(token());
          s.decoder_tokens.insert(s.decoder_tokens.end(), s.decoder_labels.begin(),
                                  s.decoder_labels.end() - 1);
          real_tokens += seq + decoder_len;
          continue;
        }
        const int len = workload == "cls" ? len_dist(rng) : seq;
        for (int k = 0; k < spec.n_virtual; ++k) {
          s.tokens.push_back(virtual_slot(k));
          s.labels.push_back(kIgnoreLabel);
        }
        for (int t = 0; t < len; ++t) {
          s.tokens.push_back(token());
          const bool scored = workload == "lm" || t >= len - 2;
          s.labels.push_back(scored ? s.tokens.back() : kIgnoreLabel);
        }
        if (encoder) {  // SEQ_CLS: one class per text
          s.labels.clear();
          s.class_label = (int32_t)(rng() % c.num_labels());
        }
        real_tokens += len;
      }
      std::vector<size_t> numels;
      std::vector<trainer::ParamRef> refs;
      for (const auto& p : method.parameters()) {
        numels.push_back(p.numel);
        refs.push_back({p.value, p.grad, p.numel});
      }
      // SEQ_CLS: the classification head trains with the prompt (PEFT's modules_to_save)
      NamedTensors head = model.classifier, head_grad = model.classifier;
      for (auto& [name, t] : head) {
        numels.push_back(t.size());
        refs.push_back({t.data(), head_grad.at(name).data(), t.size()});
      }
      trainer::AdamWOptions adamw;
      trainer::AdamW optimizer(adamw, numels);
      TrainingPass pass(model);
      // Under mpirun each rank runs its share of the batch (split by tokens, as `prompthost
      // train` does), and the ranks sum their gradients before the step: the exchange is
      // timed on its own.
      trainer::Ranks& ranks = trainer::Ranks::world();
      std::vector<Sequence> share;
      {
        std::vector<int> all(batch), lengths;
        for (int i = 0; i < batch; ++i) all[i] = i, lengths.push_back((int)data[i].tokens.size());
        for (int i : trainer::rank_share(all, lengths, ranks.rank(), ranks.size()))
          share.push_back(data[i]);
      }
      const int share_batch = (int)share.size();
      double exchange_seconds = 0.0, wait_seconds = 0.0;
      int step_no = 0;
      auto step = [&] {
        method.zero_grad();
        if (share_batch > 0) {
          Injection inj = method.forward(share_batch, {}, true, step_no);
          inj.head = head;
          pass.forward(share, inj);
          InjectionGrad grad;
          pass.backward(grad);
          method.backward(share_batch, {}, grad, step_no);
          for (auto& [name, g] : head_grad) {  // into the buffers the optimizer reads
            const auto& src = grad.head.at(name);
            std::copy(src.begin(), src.end(), g.begin());
          }
        }
        if (ranks.distributed()) {  // waiting for the slowest rank, then the exchange itself
          const auto t0 = Clock::now();
          ranks.barrier();
          const auto t1 = Clock::now();
          trainer::sum_gradients(refs, ranks);
          wait_seconds += std::chrono::duration<double>(t1 - t0).count();
          exchange_seconds += std::chrono::duration<double>(Clock::now() - t1).count();
        }
        optimizer.update(refs, 1e-3, ++step_no);
      };
      for (int w = 0; w < warmup; ++w) step();
      exchange_seconds = wait_seconds = 0.0;
      std::vector<double> times, cpu_times;
      for (int i = 0; i < steps; ++i) {
        const auto t0 = Clock::now();
        const double c0 = process_cpu_seconds();
        step();
        times.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
        cpu_times.push_back(process_cpu_seconds() - c0);
      }
      const double med = median(times), fastest = *std::min_element(times.begin(), times.end());
      // Achieved GEMM rate of the step against this machine's SGEMM rate, measured now.
      out["peak_rss_mb"] = std::round(peak_rss_mb() * 10) / 10;
      const double gflop = pass.step_flops() * 1e-9, sgemm = measure_sgemm_gflops();
      out.update({{"batch", batch},
                  {"seq", seq},
                  {"virtual", virt},
                  {"workload", workload},
                  {"step_ms_median", round2(med * 1e3)},
                  {"step_ms_min", round2(fastest * 1e3)},
                  {"tokens_per_s", std::round(real_tokens / med * 10) / 10},
                  {"step_cpu_ms_median", round2(median(cpu_times) * 1e3)},
                  {"gflop_per_step", round2(gflop)},
                  {"gflops", round2(gflop / med)},
                  {"gflops_best", round2(gflop / fastest)},
                  {"sgemm_gflops", round2(sgemm)},
                  {"sgemm_fraction", round2(gflop / fastest / sgemm)}});
      if (ranks.distributed()) {  // the whole batch's tokens; each rank's own GEMM rate
        double total = 0.0;
        for (const auto& t : times) total += t;
        out.update({{"ranks", ranks.size()},
                    {"wait_ms_mean", round2(wait_seconds / steps * 1e3)},
                    {"exchange_ms_mean", round2(exchange_seconds / steps * 1e3)},
                    {"exchange_share", std::round(exchange_seconds / total * 1e5) / 1e5}});
      }
    }
    trainer::Ranks& ranks = trainer::Ranks::world();
    if (ranks.root()) std::printf("%s\n", out.dump().c_str());  // under mpirun: rank 0 reports
    ranks.finalize();
    return kExitOk;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "prompthost bench: %s\n", e.what());
    return kExitFailure;
  }
}

}  // namespace ph::cli
