#include "models/engine/attention.h"

#include <cblas.h>

#include <cmath>
#include <limits>

namespace ph {

namespace {

// The spans a segment's queries see, in key order: the contexts, then its own keys.
std::vector<const KVSpan*> spans_of(const AttentionSegment& seg) {
  std::vector<const KVSpan*> spans;
  for (const auto& c : seg.context)
    if (c.n > 0) spans.push_back(&c);
  spans.push_back(&seg.own);
  return spans;
}

int total_keys(const std::vector<const KVSpan*>& spans) {
  int total = 0;
  for (const KVSpan* s : spans) total += s->n;
  return total;
}

// scores[len, total] = scale · Q_h K_gᵀ over every span; own keys after query t are masked.
void scaled_scores(const AttentionSegment& seg, const std::vector<const KVSpan*>& spans, int h,
                   int g, int hd, float scale, int total, float* scores) {
  int col = 0;
  for (const KVSpan* s : spans) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, seg.len, s->n, hd, scale,
                seg.q + (size_t)h * hd, (int)seg.q_stride, s->k + (size_t)g * s->head_stride,
                (int)s->pos_stride, 0.0f, scores + col, total);
    col += s->n;
  }
  const int own0 = total - seg.len;
  const float neg_inf = -std::numeric_limits<float>::infinity();
  for (int t = 0; t < seg.len; ++t)
    for (int j = t + 1; j < seg.len; ++j) scores[(size_t)t * total + own0 + j] = neg_inf;
}

}  // namespace

void attention_forward(const AttentionShape& shape, const AttentionSegment& seg) {
  if (seg.len == 0) return;
  const int hd = shape.head_dim, group = shape.n_heads / shape.n_kv_heads;
  const float scale = 1.0f / std::sqrt((float)hd);
  const auto spans = spans_of(seg);
  const int total = total_keys(spans);
  std::vector<float> p((size_t)seg.len * total);
  for (int h = 0; h < shape.n_heads; ++h) {
    const int g = h / group;
    scaled_scores(seg, spans, h, g, hd, scale, total, p.data());
    for (int t = 0; t < seg.len; ++t) {  // softmax, keeping the log-sum-exp
      float* row = p.data() + (size_t)t * total;
      float max = row[0];
      for (int j = 1; j < total; ++j) max = row[j] > max ? row[j] : max;
      double sum = 0.0;
      for (int j = 0; j < total; ++j) {
        row[j] = std::exp(row[j] - max);
        sum += row[j];
      }
      const float inv = (float)(1.0 / sum);
      for (int j = 0; j < total; ++j) row[j] *= inv;
      seg.lse[(size_t)h * seg.len + t] = max + (float)std::log(sum);
    }
    int col = 0;
    for (size_t i = 0; i < spans.size(); ++i) {  // O_h = Σ_span P_span V_span
      const KVSpan* s = spans[i];
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, seg.len, hd, s->n, 1.0f,
                  p.data() + col, total, s->v + (size_t)g * s->head_stride, (int)s->pos_stride,
                  i == 0 ? 0.0f : 1.0f, seg.out + (size_t)h * hd, (int)seg.out_stride);
      col += s->n;
    }
  }
}

// With P = softmax(S), O = P V and upstream dO:
//   dV = Pᵀ dO,  dP = dO Vᵀ,  dS = P ⊙ (dP − rowsum(dO ⊙ O)),  dQ = scale dS K,  dK = scale dSᵀ Q.
void attention_backward(const AttentionShape& shape, const AttentionSegment& seg) {
  if (seg.len == 0) return;
  const int hd = shape.head_dim, group = shape.n_heads / shape.n_kv_heads;
  const float scale = 1.0f / std::sqrt((float)hd);
  const auto spans = spans_of(seg);
  const int total = total_keys(spans);
  std::vector<float> p((size_t)seg.len * total), dp((size_t)seg.len * total);
  std::vector<float> delta(seg.len);
  for (int h = 0; h < shape.n_heads; ++h) {
    const int g = h / group;
    scaled_scores(seg, spans, h, g, hd, scale, total, p.data());
    for (int t = 0; t < seg.len; ++t) {
      float* row = p.data() + (size_t)t * total;
      const float lse = seg.lse[(size_t)h * seg.len + t];
      for (int j = 0; j < total; ++j) row[j] = std::exp(row[j] - lse);  // exp(-inf) = 0
      const float* o = seg.out + (size_t)t * seg.out_stride + (size_t)h * hd;
      const float* d = seg.dout + (size_t)t * seg.out_stride + (size_t)h * hd;
      double acc = 0.0;
      for (int i = 0; i < hd; ++i) acc += (double)o[i] * d[i];
      delta[t] = (float)acc;
    }
    const float* dout_h = seg.dout + (size_t)h * hd;
    int col = 0;
    for (const KVSpan* s : spans) {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, seg.len, s->n, hd, 1.0f, dout_h,
                  (int)seg.out_stride, s->v + (size_t)g * s->head_stride, (int)s->pos_stride, 0.0f,
                  dp.data() + col, total);
      if (s->dv)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, s->n, hd, seg.len, 1.0f,
                    p.data() + col, total, dout_h, (int)seg.out_stride, 1.0f,
                    s->dv + (size_t)g * s->head_stride, (int)s->pos_stride);
      col += s->n;
    }
    for (int t = 0; t < seg.len; ++t) {  // dS, in place of dP
      const float* pr = p.data() + (size_t)t * total;
      float* dr = dp.data() + (size_t)t * total;
      for (int j = 0; j < total; ++j) dr[j] = pr[j] * (dr[j] - delta[t]);
    }
    col = 0;
    for (const KVSpan* s : spans) {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, seg.len, hd, s->n, scale,
                  dp.data() + col, total, s->k + (size_t)g * s->head_stride, (int)s->pos_stride,
                  1.0f, seg.dq + (size_t)h * hd, (int)seg.q_stride);
      if (s->dk)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, s->n, hd, seg.len, scale,
                    dp.data() + col, total, seg.q + (size_t)h * hd, (int)seg.q_stride, 1.0f,
                    s->dk + (size_t)g * s->head_stride, (int)s->pos_stride);
      col += s->n;
    }
  }
}

}  // namespace ph
