// The engine's kernels at every instruction-set level this CPU has (isa.h): each level's
// results are bit-identical for 1 and 2 threads, and within 1e-6 (relative L2 over each
// output) of the x86-64-v2 baseline's, which the levels' FMA contractions and wider
// reductions may change in the last bits only.
#include <catch.hpp>

#include <cstring>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "models/engine/attention.h"
#include "models/engine/engine.h"
#include "models/engine/isa.h"
#include "models/engine/kernels.h"
#include "test_support.h"

namespace {

using Outputs = std::map<std::string, std::vector<float>>;

std::vector<float> random_floats(size_t n, unsigned seed, float lo = -3.0f, float hi = 3.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

// Sizes above parallel.h's threshold, so that 2 threads really split the work.
constexpr int kRows = 64, kWidth = 768, kFfn = 512;

void run_norms(Outputs& out) {
  const auto x = random_floats((size_t)kRows * kWidth, 1), dy = random_floats(x.size(), 2);
  const auto w = random_floats(kWidth, 3, 0.5f, 1.5f), b = random_floats(kWidth, 4);
  for (bool layer : {false, true}) {
    const ph::Norm norm{w.data(), layer ? b.data() : nullptr};
    const std::string name = layer ? "layernorm" : "rmsnorm";
    std::vector<float> y(x.size()), mean(kRows), rstd(kRows), dx = random_floats(x.size(), 5);
    ph::norm_forward(norm, 1e-5f, kRows, kWidth, x.data(), y.data(), mean.data(), rstd.data());
    ph::norm_backward(norm, kRows, kWidth, x.data(), mean.data(), rstd.data(), dy.data(), dx.data(),
                      /*accumulate=*/true);
    out[name + " y"] = y;
    out[name + " rstd"] = rstd;
    out[name + " dx"] = dx;
  }
}

void run_activations(Outputs& out) {
  const auto x = random_floats((size_t)kRows * kFfn, 6), dy = random_floats(x.size(), 7);
  const auto gate_up = random_floats(2 * x.size(), 8);
  const std::pair<ph::Activation, const char*> acts[] = {{ph::Activation::kGeluTanh, "gelu"},
                                                         {ph::Activation::kGeluErf, "gelu_erf"},
                                                         {ph::Activation::kRelu, "relu"},
                                                         {ph::Activation::kSilu, "silu"}};
  for (const auto& [act, name] : acts) {
    std::vector<float> y(x.size()), dx(x.size()), gy(x.size()), dgate_up(gate_up.size());
    ph::activation_forward(act, (long)x.size(), x.data(), y.data());
    ph::activation_backward(act, (long)x.size(), x.data(), dy.data(), dx.data());
    ph::gated_forward(act, kRows, kFfn, gate_up.data(), gy.data());
    ph::gated_backward(act, kRows, kFfn, gate_up.data(), dy.data(), dgate_up.data());
    out[std::string(name) + " y"] = y;
    out[std::string(name) + " dx"] = dx;
    out[std::string(name) + " gated y"] = gy;
    out[std::string(name) + " gated dgate_up"] = dgate_up;
  }
}

void run_rope_softmax_add(Outputs& out) {
  const int rows = 128, heads = 8, hd = 64;
  ph::RopeTable table;
  table.ensure(rows, hd, 10000.0f);
  std::vector<int> positions(rows);
  for (int r = 0; r < rows; ++r) positions[r] = (r * 37) % rows;
  auto x = random_floats((size_t)rows * heads * hd, 9);
  ph::rope_apply(table, rows, positions.data(), heads, x.data(), heads * hd, false);
  out["rope"] = x;
  ph::rope_apply(table, rows, positions.data(), heads, x.data(), heads * hd, true);
  out["rope inverse"] = x;

  auto row = random_floats(50257, 10, -20.0f, 20.0f);
  const float lse = ph::softmax_inplace((int)row.size(), row.data());
  row.push_back(lse);
  out["softmax"] = row;
  auto e = random_floats(4096, 11, -30.0f, 10.0f);
  ph::exp_shifted((int)e.size(), 1.5f, e.data());
  out["exp_shifted"] = e;

  auto sum = random_floats((size_t)kRows * kWidth, 12);
  const auto add = random_floats(sum.size(), 13);
  ph::add_floats((long)sum.size(), add.data(), sum.data());
  out["add_floats"] = sum;
}

// Two causal segments over a shared context span (with gradients), grouped-query heads
// and a distance bias: every element-wise loop of attention.cpp runs.
void run_attention(Outputs& out) {
  const int H = 4, G = 2, hd = 32, len = 24, ctx = 8, segs_n = 2;
  const size_t q_stride = (size_t)H * hd, kv_stride = (size_t)G * hd;
  const auto q = random_floats((size_t)segs_n * len * q_stride, 14);
  const auto k = random_floats((size_t)segs_n * len * kv_stride, 15);
  const auto v = random_floats(k.size(), 16);
  const auto ck = random_floats((size_t)ctx * kv_stride, 17), cv = random_floats(ck.size(), 18);
  const auto dout = random_floats(q.size(), 19);
  const int distances = 2 * (len + ctx) + 1;
  const auto bias_table = random_floats((size_t)H * distances, 20, -1.0f, 1.0f);
  const ph::DistanceBias bias{bias_table.data(), len + ctx, (size_t)distances};
  const ph::AttentionShape shape{H, G, hd, 0.0f, &bias};

  std::vector<float> o(q.size()), lse((size_t)segs_n * H * len), dq(q.size(), 0.0f);
  std::vector<float> dk(k.size(), 0.0f), dv(v.size(), 0.0f), dck(ck.size(), 0.0f),
      dcv(cv.size(), 0.0f);
  std::vector<ph::AttentionSegment> segs(segs_n);
  for (int s = 0; s < segs_n; ++s) {
    auto& seg = segs[s];
    const size_t q0 = (size_t)s * len * q_stride, k0 = (size_t)s * len * kv_stride;
    seg.len = len;
    seg.q_pos0 = ctx;
    seg.q = q.data() + q0;
    seg.dq = dq.data() + q0;
    seg.q_stride = q_stride;
    seg.context.push_back(
        {ck.data(), cv.data(), ctx, kv_stride, (size_t)hd, dck.data(), dcv.data(), 0});
    seg.own = {k.data() + k0,  v.data() + k0,  len, kv_stride, (size_t)hd,
               dk.data() + k0, dv.data() + k0, ctx};
    seg.out = o.data() + q0;
    seg.dout = dout.data() + q0;
    seg.out_stride = q_stride;
    seg.lse = lse.data() + (size_t)s * H * len;
  }
  ph::attention_forward(shape, segs);
  ph::attention_backward(shape, segs);
  out["attention out"] = o;
  out["attention lse"] = lse;
  out["attention dq"] = dq;
  out["attention dk"] = dk;
  out["attention dv"] = dv;
  out["attention context dk"] = dck;
  out["attention context dv"] = dcv;
}

Outputs run_all(ph::Isa isa, int threads) {
  ph::set_isa(isa);
  ph::set_num_threads(threads);
  Outputs out;
  run_norms(out);
  run_activations(out);
  run_rope_softmax_add(out);
  run_attention(out);
  return out;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

}  // namespace

TEST_CASE("every kernel is bit-identical for 1 and 2 threads and near v2 at each level", "[isa]") {
  const ph::Isa initial = ph::active_isa();
  const Outputs baseline = run_all(ph::Isa::kV2, 1);
  for (ph::Isa isa : {ph::Isa::kV2, ph::Isa::kV3, ph::Isa::kV4}) {
    if ((int)isa > (int)ph::best_isa()) {
      WARN("this CPU lacks " << ph::isa_name(isa) << ": not tested");
      continue;
    }
    const Outputs one = run_all(isa, 1), two = run_all(isa, 2);
    bool differs_from_v2 = false;  // FMA changes some last bits: the level's code really ran
    for (const auto& [name, want] : baseline) {
      differs_from_v2 = differs_from_v2 || !same_bits(one.at(name), want);
      INFO(ph::isa_name(isa) << ": " << name);
      CHECK(same_bits(one.at(name), two.at(name)));
      const double err = ph::test::relative_l2(one.at(name).data(), want.data(), want.size());
      CHECK(err <= 1e-6);
      if (isa == ph::Isa::kV2) CHECK(same_bits(one.at(name), want));
    }
    if (isa != ph::Isa::kV2) CHECK(differs_from_v2);
  }
  ph::set_isa(initial);
  ph::set_num_threads(0);
}

TEST_CASE("set_isa refuses a level the CPU lacks and parse_isa an unknown name", "[isa]") {
  CHECK(std::string(ph::isa_name(ph::parse_isa("x86-64-v3"))) == "x86-64-v3");
  CHECK_THROWS_WITH(ph::parse_isa("avx2"), Catch::Contains("x86-64-v2, x86-64-v3 or x86-64-v4"));
  if (ph::best_isa() != ph::Isa::kV4)
    CHECK_THROWS_WITH(ph::set_isa(ph::Isa::kV4), Catch::Contains("does not support x86-64-v4"));
  CHECK_NOTHROW(ph::set_isa(ph::best_isa()));
}
