// JSON from files a stranger may have written (config.json, tokenizer.json, a
// safetensors header, adapter and run files, data lines).
//
// nlohmann's parser itself is iterative, but copying, printing and our recursive
// builders (tokenizer stages) are not: a file nested a million levels deep would
// overflow the stack there. So nesting is bounded where the text is read, and every
// error names the file.
#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace ph {

// Deeper than any real file (tokenizer.json nests under 10 levels, a safetensors
// header 3) and far from any stack limit.
constexpr int kMaxJsonDepth = 128;

// For a parse callback: throws ph::Error naming `source` when an object or array starts
// deeper than kMaxJsonDepth levels (the top-level value is level 1).
void check_json_depth(int callback_depth, nlohmann::json::parse_event_t event,
                      const std::string& source);

// Parses `text`; throws ph::Error "<source>: not valid JSON: ..." or
// "<source>: JSON nested deeper than 128 levels".
nlohmann::json parse_json(std::string_view text, const std::string& source);

// Reads and parses the file at `path` (errors name it: cannot open, not valid JSON,
// nested too deep).
nlohmann::json read_json_file(const std::string& path);

}  // namespace ph
