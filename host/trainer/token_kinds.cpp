#include "host/trainer/token_kinds.h"

#include "prompthost_sdk/plugin_abi.h"

namespace ph::trainer {

std::vector<int64_t> token_kinds(const Sequence& s, int32_t bos_id) {
  std::vector<int64_t> kinds(s.tokens.size(), PH_TOKEN_OTHER);
  bool seen_real = false;
  for (size_t t = 0; t < s.tokens.size(); ++t) {
    const int32_t tok = s.tokens[t];
    if (is_virtual(tok)) continue;
    const bool first = !seen_real;
    seen_real = true;
    if (first && tok == bos_id) continue;  // BOS: other
    const bool scored = !s.labels.empty() && s.labels[t] != kIgnoreLabel;
    kinds[t] = scored ? PH_TOKEN_OUTPUT : PH_TOKEN_INPUT;
  }
  return kinds;
}

std::vector<std::vector<int64_t>> batch_token_kinds(const std::vector<Sequence>& batch,
                                                    int32_t bos_id) {
  std::vector<std::vector<int64_t>> kinds;
  for (const Sequence& s : batch) kinds.push_back(token_kinds(s, bos_id));
  return kinds;
}

}  // namespace ph::trainer
