// The `template` option: where the virtual tokens go, checked as the host will read it
// (ph_injection_spec.template_text): "[P:k]" places the next k virtual tokens, "{input}"
// (or "{text}") and "{output}" the example's fields, anything else is literal text.
#pragma once

#include <string>

namespace p_tuning {

// Throws ph::sdk::ConfigError naming "template" unless `text` has {input}, only
// well-formed [P:k] with k > 0, and places exactly n_virtual virtual tokens.
void check_template(const std::string& text, int n_virtual);

}  // namespace p_tuning
