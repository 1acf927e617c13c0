// The token kinds the host gives score_labels (ph_scored_sequence.kinds, CPT's input type
// mask) from an encoded CAUSAL_LM sequence: virtual slots and a leading BOS are OTHER,
// unscored text INPUT, scored tokens OUTPUT.
#include <catch.hpp>

#include <algorithm>

#include "host/trainer/token_kinds.h"
#include "prompthost_sdk/plugin_abi.h"

using namespace ph;

TEST_CASE("token kinds: slots and BOS other, the prompt input, the scored output") {
  Sequence s;
  s.tokens = {virtual_slot(0), virtual_slot(1), 1, 40, 41, 42, 50, 51, 2};
  s.labels = {kIgnoreLabel, kIgnoreLabel, kIgnoreLabel,
              kIgnoreLabel, kIgnoreLabel, kIgnoreLabel,
              50,           51,           2};
  CHECK(trainer::token_kinds(s, 1) ==
        std::vector<int64_t>{PH_TOKEN_OTHER, PH_TOKEN_OTHER, PH_TOKEN_OTHER, PH_TOKEN_INPUT,
                             PH_TOKEN_INPUT, PH_TOKEN_INPUT, PH_TOKEN_OUTPUT, PH_TOKEN_OUTPUT,
                             PH_TOKEN_OUTPUT});
  // without a BOS id (or a first token that is not it) the first token is input
  CHECK(trainer::token_kinds(s, -1)[2] == PH_TOKEN_INPUT);
  // a later token equal to the BOS id is text like any other
  s.tokens[4] = 1;
  CHECK(trainer::token_kinds(s, 1)[4] == PH_TOKEN_INPUT);
  // unlabelled data: nothing is output
  s.labels.clear();
  const auto kinds = trainer::token_kinds(s, 1);
  CHECK(std::count(kinds.begin(), kinds.end(), PH_TOKEN_OUTPUT) == 0);
  CHECK(trainer::batch_token_kinds({s, s}, 1) == std::vector<std::vector<int64_t>>{kinds, kinds});
}
