#include "lstm_encoder.h"

#include <cmath>

namespace p_tuning {

namespace {

// Dropout streams: (seed, step, layer) never meets an initialisation stream.
constexpr uint64_t kDropoutStreams = 1ull << 40;
constexpr uint64_t kMaxLayers = 1024;

struct LstmTape : Tape {
  std::vector<Matrix> inputs;  // per layer, its input [T, in] (after dropout)
  std::vector<std::array<LstmEncoder::DirectionTape, 2>> directions;
  std::vector<std::vector<double>> masks;  // per layer, its input's dropout scale (or empty)
  Matrix lstm_out;                         // [T, 2h]
  Matrix a0;                               // mlp_head's ReLU output [T, 2h]
};

double sigmoid(double x) {
  return 1.0 / (1.0 + std::exp(-x));
}

// Adds a double accumulator to a float32 gradient.
void add_to(Parameter* p, const std::vector<double>& g) {
  float* out = p->grad.data();
  for (size_t i = 0; i < g.size(); ++i) out[i] += (float)g[i];
}

}  // namespace

LstmEncoder::LstmEncoder(const AddParameter& add, DrawUniform draw, int dim, int hidden, int layers,
                         double dropout)
    : draw_(std::move(draw)),
      hidden_(hidden),
      dropout_(dropout),
      layers_([&] {  // registered before mlp_head, in PyTorch's order
        std::vector<std::array<Direction, 2>> ls(layers);
        const double bound = 1.0 / std::sqrt((double)hidden);
        const size_t h4 = 4 * (size_t)hidden;
        for (int l = 0; l < layers; ++l)
          for (int r = 0; r < 2; ++r) {
            Direction& d = ls[l][r];
            d.in = l == 0 ? dim : 2 * hidden;
            const std::string sfx = std::to_string(l) + (r ? "_reverse" : "");
            d.w_ih = &add("lstm_head.weight_ih_l" + sfx, {h4, (size_t)d.in}, bound);
            d.w_hh = &add("lstm_head.weight_hh_l" + sfx, {h4, (size_t)hidden}, bound);
            d.b_ih = &add("lstm_head.bias_ih_l" + sfx, {h4}, bound);
            d.b_hh = &add("lstm_head.bias_hh_l" + sfx, {h4}, bound);
          }
        return ls;
      }()),
      head0_(add, "mlp_head.0", 2 * hidden, 2 * hidden),
      head2_(add, "mlp_head.2", 2 * hidden, dim) {}

std::unique_ptr<Tape> LstmEncoder::make_tape() const {
  return std::make_unique<LstmTape>();
}

void LstmEncoder::run(const Direction& d, bool reverse, const Matrix& x, int rows, Matrix& out,
                      DirectionTape& tape) const {
  const int H = hidden_, in = d.in;
  const float* w_ih = d.w_ih->value.data();
  const float* w_hh = d.w_hh->value.data();
  const float* b_ih = d.b_ih->value.data();
  const float* b_hh = d.b_hh->value.data();
  tape.gates.assign((size_t)rows * 4 * H, 0.0);
  tape.c.assign((size_t)rows * H, 0.0);
  tape.tanh_c.assign((size_t)rows * H, 0.0);
  tape.h.assign((size_t)rows * H, 0.0);
  std::vector<double> h_prev(H, 0.0), c_prev(H, 0.0), a(4 * H);
  for (int s = 0; s < rows; ++s) {
    const int t = reverse ? rows - 1 - s : s;
    const double* xt = &x[(size_t)t * in];
    for (int k = 0; k < 4 * H; ++k) {
      double v = (double)b_ih[k] + (double)b_hh[k];
      const float* wi = w_ih + (size_t)k * in;
      for (int i = 0; i < in; ++i) v += (double)wi[i] * xt[i];
      const float* wh = w_hh + (size_t)k * H;
      for (int j = 0; j < H; ++j) v += (double)wh[j] * h_prev[j];
      a[k] = v;
    }
    double* gates = &tape.gates[(size_t)t * 4 * H];
    for (int j = 0; j < H; ++j) {
      const double gi = sigmoid(a[j]), gf = sigmoid(a[H + j]), gg = std::tanh(a[2 * H + j]),
                   go = sigmoid(a[3 * H + j]);
      gates[j] = gi, gates[H + j] = gf, gates[2 * H + j] = gg, gates[3 * H + j] = go;
      const double c = gf * c_prev[j] + gi * gg, tc = std::tanh(c), h = go * tc;
      tape.c[(size_t)t * H + j] = c;
      tape.tanh_c[(size_t)t * H + j] = tc;
      tape.h[(size_t)t * H + j] = h;
      out[(size_t)t * 2 * H + (reverse ? H : 0) + j] = h;
      c_prev[j] = c;
      h_prev[j] = h;
    }
  }
}

void LstmEncoder::run_backward(const Direction& d, bool reverse, const Matrix& x,
                               const DirectionTape& tape, const Matrix& grad_out, int rows,
                               Matrix& grad_x) const {
  const int H = hidden_, in = d.in;
  const float* w_ih = d.w_ih->value.data();
  const float* w_hh = d.w_hh->value.data();
  std::vector<double> g_wih((size_t)4 * H * in, 0.0), g_whh((size_t)4 * H * H, 0.0),
      g_b(4 * H, 0.0);
  std::vector<double> dh_next(H, 0.0), dc_next(H, 0.0), da(4 * H);
  const std::vector<double> zeros(H, 0.0);
  // Backward visits the steps in the reverse of the order forward ran them.
  for (int s = rows - 1; s >= 0; --s) {
    const int t = reverse ? rows - 1 - s : s;
    const int tp = reverse ? t + 1 : t - 1;  // the step before t in forward's order
    const bool first = s == 0;
    const double* h_prev = first ? zeros.data() : &tape.h[(size_t)tp * H];
    const double* c_prev = first ? zeros.data() : &tape.c[(size_t)tp * H];
    const double* gates = &tape.gates[(size_t)t * 4 * H];
    for (int j = 0; j < H; ++j) {
      const double gi = gates[j], gf = gates[H + j], gg = gates[2 * H + j], go = gates[3 * H + j];
      const double tc = tape.tanh_c[(size_t)t * H + j];
      const double dh = grad_out[(size_t)t * 2 * H + (reverse ? H : 0) + j] + dh_next[j];
      const double dc = dc_next[j] + dh * go * (1.0 - tc * tc);
      da[j] = dc * gg * gi * (1.0 - gi);
      da[H + j] = dc * c_prev[j] * gf * (1.0 - gf);
      da[2 * H + j] = dc * gi * (1.0 - gg * gg);
      da[3 * H + j] = dh * tc * go * (1.0 - go);
      dc_next[j] = dc * gf;
    }
    std::fill(dh_next.begin(), dh_next.end(), 0.0);
    const double* xt = &x[(size_t)t * in];
    double* gxt = &grad_x[(size_t)t * in];
    for (int k = 0; k < 4 * H; ++k) {
      const double g = da[k];
      g_b[k] += g;
      const float* wi = w_ih + (size_t)k * in;
      double* gwi = &g_wih[(size_t)k * in];
      for (int i = 0; i < in; ++i) {
        gwi[i] += g * xt[i];
        gxt[i] += g * wi[i];
      }
      const float* wh = w_hh + (size_t)k * H;
      double* gwh = &g_whh[(size_t)k * H];
      for (int j = 0; j < H; ++j) {
        gwh[j] += g * h_prev[j];
        dh_next[j] += g * wh[j];
      }
    }
  }
  add_to(d.w_ih, g_wih);
  add_to(d.w_hh, g_whh);
  add_to(d.b_ih, g_b);
  add_to(d.b_hh, g_b);
}

Matrix LstmEncoder::forward(const Matrix& x, int rows, bool train, int64_t step, Tape* tape) const {
  const int L = (int)layers_.size(), H = hidden_;
  LstmTape local;
  LstmTape& t = tape ? static_cast<LstmTape&>(*tape) : local;
  t.inputs.assign(L, Matrix());
  t.directions.assign(L, {});
  t.masks.assign(L, std::vector<double>());
  Matrix seq = x;
  for (int l = 0; l < L; ++l) {
    if (l > 0 && train && dropout_ > 0.0) {  // PyTorch: on each layer's output but the last
      std::vector<float> u(seq.size());
      draw_(kDropoutStreams + (uint64_t)step * kMaxLayers + (uint64_t)l, u.size(), u.data());
      std::vector<double>& mask = t.masks[l];
      mask.resize(seq.size());
      const double keep = 1.0 / (1.0 - dropout_);
      for (size_t i = 0; i < seq.size(); ++i) {
        mask[i] = (double)u[i] >= dropout_ ? keep : 0.0;
        seq[i] *= mask[i];
      }
    }
    Matrix out((size_t)rows * 2 * H, 0.0);
    for (int r = 0; r < 2; ++r) run(layers_[l][r], r == 1, seq, rows, out, t.directions[l][r]);
    t.inputs[l] = std::move(seq);
    seq = std::move(out);
  }
  Matrix a0 = head0_.forward(seq, rows);
  relu_in_place(a0);
  Matrix result = head2_.forward(a0, rows);
  t.lstm_out = std::move(seq);
  t.a0 = std::move(a0);
  return result;
}

Matrix LstmEncoder::backward(const Tape& tape, const Matrix& grad_out, int rows) const {
  const auto& t = static_cast<const LstmTape&>(tape);
  Matrix g = head2_.backward(t.a0, grad_out, rows);
  relu_backward_in_place(t.a0, g);
  g = head0_.backward(t.lstm_out, g, rows);  // d loss / d last layer's output [T, 2h]
  for (int l = (int)layers_.size() - 1; l >= 0; --l) {
    Matrix gx((size_t)rows * layers_[l][0].in, 0.0);
    for (int r = 0; r < 2; ++r)
      run_backward(layers_[l][r], r == 1, t.inputs[l], t.directions[l][r], g, rows, gx);
    const std::vector<double>& mask = t.masks[l];
    if (!mask.empty())
      for (size_t i = 0; i < gx.size(); ++i) gx[i] *= mask[i];
    g = std::move(gx);
  }
  return g;
}

}  // namespace p_tuning
