#include "models/engine/attention.h"

#include <algorithm>
#include <atomic>
#include <cmath>

#include "models/engine/isa/kernel_table.h"
#include "models/engine/linear.h"
#include "models/engine/parallel.h"

namespace ph {

namespace {

// The spans a segment's queries see, in key order: the contexts, then its own keys.
std::vector<const KVSpan*> spans_of(const AttentionSegment& seg) {
  std::vector<const KVSpan*> spans;
  for (const auto& c : seg.context)
    if (c.n > 0) spans.push_back(&c);
  if (seg.own.n > 0) spans.push_back(&seg.own);
  return spans;
}

int total_keys(const AttentionSegment& seg) {
  int total = seg.own.n;
  for (const auto& c : seg.context) total += c.n;
  return total;
}

float scale_of(const AttentionShape& shape) {
  return shape.scale > 0.0f ? shape.scale : 1.0f / std::sqrt((float)shape.head_dim);
}

// Keys query t sees: the contexts and own keys up to t (causal), or every key.
int visible_keys(const AttentionSegment& seg, int total, int t) {
  return seg.causal ? total - seg.own.n + t + 1 : total;
}

// scores[len, total] = scale · Q_h K_gᵀ (+ the distance bias) over every span. Entries of
// own keys after the query (the causal mask) are computed too, and ignored by the callers.
void scaled_scores(const KernelTable& k, const AttentionShape& shape, const AttentionSegment& seg,
                   const std::vector<const KVSpan*>& spans, int h, int g, int total,
                   float* scores) {
  const int hd = shape.head_dim;
  int col = 0;
  for (const KVSpan* s : spans) {
    gemm(false, true, seg.len, s->n, hd, scale_of(shape), seg.q + (size_t)h * hd,
         (int)seg.q_stride, s->k + (size_t)g * s->head_stride, (int)s->pos_stride, 0.0f,
         scores + col, total);
    if (shape.bias) {
      const float* table = shape.bias->table + h * shape.bias->head_stride + shape.bias->center;
      for (int t = 0; t < seg.len; ++t) {
        const float* b = table + (s->pos0 - (seg.q_pos0 + t));
        k.add_span(s->n, b, scores + (size_t)t * total + col);
      }
    }
    col += s->n;
  }
}

// Runs unit(u, scratch) for u in [0, units), handing units out dynamically: a unit's
// result must not depend on the thread that computes it (then, on a shared machine, a
// descheduled thread's units are simply taken over by the others). Each thread gets its
// own scratch.
template <class Scratch, class Unit>
void for_each_unit(int units, long work, Unit unit) {
  if (work < (1L << 16) || units < 2) {
    Scratch scratch;
    for (int u = 0; u < units; ++u) unit(u, scratch);
    return;
  }
  std::atomic<int> next{0};
  parallel_run([&](int) {
    Scratch scratch;
    for (int u; (u = next.fetch_add(1, std::memory_order_relaxed)) < units;) unit(u, scratch);
  });
}

}  // namespace

// Units of work are (segment, head) pairs.
void attention_forward(const AttentionShape& shape, const std::vector<AttentionSegment>& segs) {
  const KernelTable& k = kernels();  // on the calling thread: kernels.cpp says why
  const int hd = shape.head_dim, H = shape.n_heads, group = shape.n_heads / shape.n_kv_heads;
  long work = 0;
  size_t scratch = 0;
  for (const auto& seg : segs) {
    work += (long)seg.len * total_keys(seg) * hd * H;
    scratch = std::max(scratch, (size_t)seg.len * total_keys(seg));
  }
  struct Scratch {
    std::vector<float> p;
  };
  for_each_unit<Scratch>((int)segs.size() * H, work, [&](int u, Scratch& sc) {
    const AttentionSegment& seg = segs[u / H];
    const int h = u % H, g = h / group;
    if (seg.len == 0) return;
    std::vector<float>& p = sc.p;
    p.resize(scratch);
    const auto spans = spans_of(seg);
    const int total = total_keys(seg);
    scaled_scores(k, shape, seg, spans, h, g, total, p.data());
    for (int t = 0; t < seg.len; ++t) {  // softmax over the visible keys, keeping the lse
      float* row = p.data() + (size_t)t * total;
      const int visible = visible_keys(seg, total, t);
      seg.lse[(size_t)h * seg.len + t] = k.softmax_row(visible, row);
      std::fill(row + visible, row + total, 0.0f);
    }
    int col = 0;
    for (size_t i = 0; i < spans.size(); ++i) {  // O_h = Σ_span P_span V_span
      const KVSpan* s = spans[i];
      gemm(false, false, seg.len, hd, s->n, 1.0f, p.data() + col, total,
           s->v + (size_t)g * s->head_stride, (int)s->pos_stride, i == 0 ? 0.0f : 1.0f,
           seg.out + (size_t)h * hd, (int)seg.out_stride);
      col += s->n;
    }
  });
}

// With P = softmax(S), O = P V and upstream dO:
//   dV = Pᵀ dO,  dP = dO Vᵀ,  dS = P ⊙ (dP − rowsum(dO ⊙ O)),  dQ = scale dS K,  dK = scale dSᵀ Q.
//
// Units are (segment, kv head) pairs: the heads of a group write the same own-key
// gradients, so they stay in one unit. Context spans are seen by many segments; each
// unit writes its share of their dk/dv to its own partial buffer, and the partials are
// added to the spans afterwards in unit order, so the sums do not depend on the
// thread count or on which thread ran which unit.
void attention_backward(const AttentionShape& shape, const std::vector<AttentionSegment>& segs) {
  const KernelTable& k = kernels();  // on the calling thread: kernels.cpp says why
  const int hd = shape.head_dim, G = shape.n_kv_heads, group = shape.n_heads / shape.n_kv_heads;
  const float scale = scale_of(shape);
  long work = 0;
  size_t scratch = 0, partial_size = 0;  // partial_size: per unit, all of its context spans
  std::vector<size_t> partial_offset(segs.size() + 1, 0);
  for (size_t si = 0; si < segs.size(); ++si) {
    const auto& seg = segs[si];
    work += (long)seg.len * total_keys(seg) * hd * shape.n_heads;
    scratch = std::max(scratch, (size_t)seg.len * total_keys(seg));
    size_t per_unit = 0;
    for (const auto& c : seg.context)
      if (c.dk || c.dv) per_unit += 2 * (size_t)c.n * hd;
    partial_offset[si + 1] = partial_offset[si] + per_unit * G;
    partial_size = partial_offset[si + 1];
  }
  std::vector<float> partial(partial_size, 0.0f);
  struct Scratch {
    std::vector<float> p, dp, delta;
  };
  for_each_unit<Scratch>((int)segs.size() * G, work, [&](int u, Scratch& sc) {
    const size_t si = u / G;
    const AttentionSegment& seg = segs[si];
    const int g = u % G;
    if (seg.len == 0) return;
    std::vector<float>&p = sc.p, &dp = sc.dp, &delta = sc.delta;
    p.resize(scratch);
    dp.resize(scratch);
    const auto spans = spans_of(seg);
    const int total = total_keys(seg);
    // Where each span's dk/dv go for this unit: the own span directly (only this unit
    // writes it), a context span into this unit's partial buffer as [n, hd] blocks.
    std::vector<float*> dk(spans.size(), nullptr), dv(spans.size(), nullptr);
    std::vector<int> ld(spans.size(), 0);
    float* part =
        partial.data() + partial_offset[si] + (partial_offset[si + 1] - partial_offset[si]) / G * g;
    for (size_t i = 0; i < spans.size(); ++i) {
      const KVSpan* s = spans[i];
      if (s == &seg.own) {
        if (s->dk) dk[i] = s->dk + (size_t)g * s->head_stride;
        if (s->dv) dv[i] = s->dv + (size_t)g * s->head_stride;
        ld[i] = (int)s->pos_stride;
      } else if (s->dk || s->dv) {
        dk[i] = part;
        dv[i] = part + (size_t)s->n * hd;
        part += 2 * (size_t)s->n * hd;
        ld[i] = hd;
      }
    }
    delta.resize(seg.len);
    for (int h = g * group; h < (g + 1) * group; ++h) {
      scaled_scores(k, shape, seg, spans, h, g, total, p.data());
      for (int t = 0; t < seg.len; ++t) {
        float* row = p.data() + (size_t)t * total;
        const int visible = visible_keys(seg, total, t);
        k.exp_shifted_row(visible, seg.lse[(size_t)h * seg.len + t], row);
        std::fill(row + visible, row + total, 0.0f);
        const float* o = seg.out + (size_t)t * seg.out_stride + (size_t)h * hd;
        const float* d = seg.dout + (size_t)t * seg.out_stride + (size_t)h * hd;
        delta[t] = k.dot_row(hd, o, d);
      }
      const float* dout_h = seg.dout + (size_t)h * hd;
      int col = 0;
      for (size_t i = 0; i < spans.size(); ++i) {
        const KVSpan* s = spans[i];
        gemm(false, true, seg.len, s->n, hd, 1.0f, dout_h, (int)seg.out_stride,
             s->v + (size_t)g * s->head_stride, (int)s->pos_stride, 0.0f, dp.data() + col, total);
        if (dv[i])
          gemm(true, false, s->n, hd, seg.len, 1.0f, p.data() + col, total, dout_h,
               (int)seg.out_stride, 1.0f, dv[i], ld[i]);
        col += s->n;
      }
      for (int t = 0; t < seg.len; ++t) {  // dS, in place of dP
        k.softmax_backward_row(total, p.data() + (size_t)t * total, delta[t],
                               dp.data() + (size_t)t * total);
      }
      col = 0;
      for (size_t i = 0; i < spans.size(); ++i) {
        const KVSpan* s = spans[i];
        gemm(false, false, seg.len, hd, s->n, scale, dp.data() + col, total,
             s->k + (size_t)g * s->head_stride, (int)s->pos_stride, 1.0f, seg.dq + (size_t)h * hd,
             (int)seg.q_stride);
        if (dk[i])
          gemm(true, false, s->n, hd, seg.len, scale, dp.data() + col, total,
               seg.q + (size_t)h * hd, (int)seg.q_stride, 1.0f, dk[i], ld[i]);
        col += s->n;
      }
    }
  });
  // The context spans' partials, in unit order (segment, then kv head).
  for (size_t si = 0; si < segs.size(); ++si) {
    const float* part = partial.data() + partial_offset[si];
    for (int g = 0; g < G; ++g)
      for (const auto& c : segs[si].context) {
        if (c.n == 0 || !(c.dk || c.dv)) continue;
        for (int j = 0; j < c.n; ++j) {
          const size_t at = (size_t)g * c.head_stride + (size_t)j * c.pos_stride;
          const float* pk = part + (size_t)j * hd;
          const float* pv = part + (size_t)(c.n + j) * hd;
          if (c.dk) k.add_span(hd, pk, c.dk + at);
          if (c.dv) k.add_span(hd, pv, c.dv + at);
        }
        part += 2 * (size_t)c.n * hd;
      }
  }
}

}  // namespace ph
