// PEFT's CPT rules (tests/fixtures/family/README.md §3), apart from the plugin's plumbing:
// the projection epsilons, the projection, the gradient row mask, and the labels and loss
// weights of one sequence.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace cpt {

// A context token's type code: PEFT's notebook gives example k of the context 4k+1 (input
// template), 4k+2 (input), 4k+3 (output template) and 4k+4 (label); 0 marks separators.
inline bool is_label_type(int64_t type) {
  return type > 0 && type % 4 == 0;
}
// Rows whose delta trains (PEFT's gradient hook): the input, template and output-template
// rows; label and type-0 rows get no gradient.
inline bool is_trained_type(int64_t type) {
  return type > 0 && type % 4 != 0;
}

// PEFT's get_epsilon(): per context row, in float32, format_eps * sqrt(dim / 2048) for
// template rows (type % 4 in {1, 3}), input_eps * sqrt(dim / 2048) for input rows
// (% 4 == 2), 1e-10 for label and type-0 rows.
std::vector<float> projection_epsilons(const std::vector<int64_t>& types, int dim, double input_eps,
                                       double format_eps);

// PEFT's projection, in place on delta [rows, dim]: each non-zero row scaled by
// eps / max(norm, eps), i.e. clipped into the ball of radius eps.
void project(float* delta, int rows, int dim, const std::vector<float>& eps);

// What PEFT's _cpt_forward and calculate_loss score in one sequence of `length` tokens
// (virtual slots included): the context's labels and types, the caller's shifted by
// max(context types); labels only at label types; weights 1, or with decay f^j for the
// j-th largest label type present among positions 1..length-1.
struct LossSettings {
  std::vector<int64_t> token_ids, types;  // the context (cpt_token_ids, cpt_tokens_type_mask)
  bool decay = false;                     // opt_weighted_loss_type "decay"
  double decay_factor = 1.0;
};
// slots[t]: context row k, or -1 for a real token whose kind (PEFT's input_type_mask
// value, 0..4) is kinds[t] and whose caller label is labels[t] (in/out); weights out.
void score_sequence(const LossSettings& s, int64_t length, const int64_t* slots,
                    const int64_t* kinds, int64_t* labels, float* weights);

}  // namespace cpt
