#include "host/serve/completion_request.h"

#include <cmath>
#include <limits>

#include "host/serve/api_error.h"
#include "models/common/json_file.h"

namespace ph::serve {

namespace {

using json = nlohmann::json;

[[noreturn]] void refuse(const std::string& param, const std::string& problem) {
  throw ApiError(400, "'" + param + "' " + problem, "invalid_request_error", param);
}

// Fields OpenAI's API has that change nothing here at their default (null, 0, false):
// accepted at it, refused otherwise (a client relying on them would be misled).
bool unsupported_at_default(const std::string& key, const json& v) {
  if (key == "user" || key == "stream_options") return true;  // handled or informational
  if (key == "presence_penalty" || key == "frequency_penalty")
    return v.is_null() || (v.is_number() && v.get<double>() == 0);
  if (key == "best_of") return v.is_null() || (v.is_number_integer() && v.get<int64_t>() == 1);
  if (key == "logit_bias") return v.is_null() || (v.is_object() && v.empty());
  if (key == "suffix") return v.is_null();
  return false;
}

int integer(const json& v, const std::string& param, int64_t lo, int64_t hi) {
  if (!v.is_number_integer())
    refuse(param, "must be an integer, not " + std::string(v.type_name()));
  const int64_t x =
      v.is_number_unsigned() && v.get<uint64_t>() > (uint64_t)hi ? hi + 1 : v.get<int64_t>();
  if (x < lo || x > hi)
    refuse(param, "must be between " + std::to_string(lo) + " and " + std::to_string(hi) +
                      " (got " + v.dump() + ")");
  return (int)x;
}

double number(const json& v, const std::string& param) {
  if (!v.is_number()) refuse(param, "must be a number, not " + std::string(v.type_name()));
  const double x = v.get<double>();
  if (!std::isfinite(x)) refuse(param, "must be finite");
  return x;
}

bool boolean(const json& v, const std::string& param) {
  if (!v.is_boolean()) refuse(param, "must be true or false, not " + std::string(v.type_name()));
  return v.get<bool>();
}

std::string text(const json& v, const std::string& param) {
  if (!v.is_string()) refuse(param, "must be a string, not " + std::string(v.type_name()));
  return v.get<std::string>();
}

std::vector<int32_t> token_ids(const json& list, const std::string& param) {
  std::vector<int32_t> ids;
  for (const json& id : list)
    ids.push_back(integer(id, param, 0, std::numeric_limits<int32_t>::max()));
  return ids;
}

// "seed": null (a random one) or a non-negative 64-bit integer.
std::optional<uint64_t> seed(const json& v) {
  if (v.is_null()) return std::nullopt;
  if (!v.is_number_integer())
    refuse("seed", "must be an integer, not " + std::string(v.type_name()));
  if (!v.is_number_unsigned() && v.get<int64_t>() < 0) refuse("seed", "must not be negative");
  return v.get<uint64_t>();
}

// "prompt": "text" | ["text", ...] | [id, ...] | [[id, ...], ...].
std::vector<PromptInput> prompts(const json& v) {
  const char* kForms =
      "must be a string, a list of strings, a list of token ids or a list of "
      "lists of token ids";
  std::vector<PromptInput> out;
  if (v.is_string()) {
    out.push_back({false, v.get<std::string>(), {}, true});
    return out;
  }
  if (!v.is_array() || v.empty()) refuse("prompt", kForms + std::string(" (not empty)"));
  if (v.front().is_number()) {
    out.push_back({true, "", token_ids(v, "prompt"), true});
    return out;
  }
  for (const json& item : v) {
    if (item.is_string())
      out.push_back({false, item.get<std::string>(), {}, true});
    else if (item.is_array() && !item.empty())
      out.push_back({true, "", token_ids(item, "prompt"), true});
    else
      refuse("prompt", kForms);
    if (out.back().is_ids != out.front().is_ids) refuse("prompt", "mixes strings and token ids");
  }
  return out;
}

std::vector<std::string> stops(const json& v, const CompletionLimits& limits) {
  std::vector<std::string> out;
  if (v.is_null()) return out;
  if (v.is_string()) {
    out.push_back(v.get<std::string>());
  } else if (v.is_array()) {
    for (const json& s : v) out.push_back(text(s, "stop"));
  } else {
    refuse("stop", "must be a string or a list of strings");
  }
  if ((int)out.size() > limits.max_stops)
    refuse("stop", "holds more than " + std::to_string(limits.max_stops) + " strings");
  for (const std::string& s : out)
    if (s.empty()) refuse("stop", "holds an empty string (it would stop before any text)");
  return out;
}

void read_field(CompletionRequest& r, const std::string& key, const json& v,
                const CompletionLimits& limits) {
  if (key == "model")
    r.model = text(v, key);
  else if (key == "task")
    r.task = v.is_null() ? "" : text(v, key);
  else if (key == "prompt")
    r.prompts = prompts(v);
  else if (key == "max_tokens")
    r.max_tokens = v.is_null() ? 16 : integer(v, key, 0, 1 << 24);
  else if (key == "temperature")
    r.sampling.temperature = (float)number(v, key);
  else if (key == "top_p")
    r.sampling.top_p = (float)number(v, key);
  // vLLM's "all" is -1; ours is 0.
  else if (key == "top_k")
    r.sampling.top_k = std::max(0, integer(v, key, -1, 1 << 24));
  else if (key == "seed")
    r.seed = seed(v);
  else if (key == "stop")
    r.stop = stops(v, limits);
  else if (key == "n")
    r.n = integer(v, key, 1, limits.max_choices);
  else if (key == "echo")
    r.echo = boolean(v, key);
  else if (key == "logprobs")
    r.logprobs = v.is_null() ? -1 : integer(v, key, 0, limits.max_logprobs);
  else if (key == "stream")
    r.stream = boolean(v, key);
  else if (key == "return_token_ids")
    r.return_token_ids = !v.is_null() && boolean(v, key);
  else if (!unsupported_at_default(key, v))
    refuse(key, "is not supported by this server (or not at this value)");
}

}  // namespace

CompletionRequest parse_completion_request(const std::string& body,
                                           const CompletionLimits& limits) {
  json root;
  try {
    root = parse_json(body, "the request body");
  } catch (const Error& e) {
    throw ApiError(400, e.what());
  }
  if (!root.is_object()) throw ApiError(400, "the request body must be a JSON object");
  CompletionRequest r;
  for (const auto& [key, value] : root.items()) read_field(r, key, value, limits);
  if (!root.contains("model")) refuse("model", "is required (GET /v1/models lists them)");
  if (!root.contains("prompt")) refuse("prompt", "is required");
  if (root.contains("stream_options") && !root["stream_options"].is_null()) {
    const json& o = root["stream_options"];
    if (!o.is_object()) refuse("stream_options", "must be an object");
    if (o.contains("include_usage"))
      r.include_usage = boolean(o["include_usage"], "stream_options");
  }
  if (r.sampling.temperature < 0 || r.sampling.temperature > 100)
    refuse("temperature", "must be between 0 and 100 (0 is greedy)");
  if (!(r.sampling.top_p > 0 && r.sampling.top_p <= 1)) refuse("top_p", "must be in (0, 1]");
  if ((int64_t)r.prompts.size() * r.n > limits.max_choices)
    refuse("n", "prompts × n is " + std::to_string(r.prompts.size() * r.n) + ", more than the " +
                    std::to_string(limits.max_choices) + " choices one request may have");
  return r;
}

}  // namespace ph::serve
