#include "host/trainer/run_inputs.h"

#include <filesystem>

#include "host/trainer/adapter_files.h"
#include "host/trainer/file_digest.h"
#include "host/trainer/json_fields.h"
#include "models/common/error.h"

namespace ph::trainer {

namespace fs = std::filesystem;

namespace {

struct Input {
  const char* key;     // in "inputs"
  const char* what;    // for messages
  const char* option;  // the option that may give it again on resume, or nullptr
  std::string RunInputs::*path;
};

const Input kInputs[] = {
    {"model", "model", nullptr, &RunInputs::model},
    {"tokenizer", "tokenizer", nullptr, &RunInputs::tokenizer},
    {"data", "training data", "--data", &RunInputs::data},
    {"eval_data", "evaluation data", "--eval-data", &RunInputs::eval_data},
};

std::string absolute(const std::string& path) {
  return path.empty() ? "" : fs::absolute(path).lexically_normal().string();
}

// {"path"} plus the digest of a file (a model or tokenizer folder has none: the model is
// checked by its facts).
nlohmann::json record_of(const std::string& path, bool digest) {
  nlohmann::json r = {{"path", path}};
  if (digest && fs::is_regular_file(path)) r.update(digest_file(path).to_json());
  return r;
}

// The path to read for one recorded input, its content checked against the record.
std::string checked_path(const Input& in, const nlohmann::json& record, const std::string& given,
                         const JsonPlace& place) {
  const std::string saved = json_field<std::string>(record, "path", place);
  if (!record.contains("sha256")) return saved;
  FileDigest recorded;
  recorded.bytes = json_field<uint64_t>(record, "bytes", place);
  recorded.sha256 = json_field<std::string>(record, "sha256", place);
  const std::string path = given.empty() ? saved : absolute(given);
  if (!fs::exists(path))
    throw Error(place.file + ": the run's " + in.what + " " + path + " is gone" +
                (in.option ? std::string("; if it moved, give ") + in.option +
                                 " FILE with --resume (its content is checked)"
                           : std::string()));
  const FileDigest now = digest_file(path);
  if (now != recorded)
    throw Error(path + ": not the " + in.what + " the run started with (" + now.describe() +
                "; the run's: " + recorded.describe() + ", " + saved +
                "): resuming would train on something else; restore it or start a new run");
  return path;
}

}  // namespace

RunInputs RunInputs::of_new_run(const TrainConfig& c) {
  RunInputs r;
  r.model = absolute(c.model);
  r.tokenizer = absolute(c.tokenizer.empty() ? c.model : c.tokenizer);
  r.data = absolute(c.data);
  r.eval_data = absolute(c.eval_data);
  for (const Input& in : kInputs)
    if (!(r.*in.path).empty())
      r.record[in.key] = record_of(r.*in.path, std::string(in.key) != "model");
  return r;
}

RunInputs RunInputs::of_resumed_run(const nlohmann::json& state, const TrainConfig& saved,
                                    const TrainConfig& given, const std::string& file,
                                    std::vector<std::string>& warnings) {
  if (!state.contains("inputs")) {
    warnings.push_back(file +
                       " comes from an older PromptHost: its paths are read against the "
                       "current folder, and the data cannot be checked for changes");
    return of_new_run(saved);
  }
  const JsonPlace place{file, "inputs"};
  RunInputs r;
  r.record = json_field<nlohmann::json>(state, "inputs", {file, ""});
  for (const Input& in : kInputs) {
    const std::string given_path = in.key == std::string("data")        ? given.data
                                   : in.key == std::string("eval_data") ? given.eval_data
                                                                        : "";
    if (!r.record.is_object() || !r.record.contains(in.key)) {
      if (in.key == std::string("eval_data")) continue;  // a run without evaluation data
      json_member(r.record, in.key, place);              // throws: missing
    }
    r.*in.path = checked_path(in, r.record[in.key], given_path, place / in.key);
    r.record[in.key]["path"] = r.*in.path;
  }
  const nlohmann::json& facts = r.record["model"].value("facts", nlohmann::json::object());
  if (!facts.is_object()) (place / "model" / "facts").fail("must be an object");
  return r;
}

void RunInputs::check_model(const ModelConfig& config) {
  const nlohmann::json facts = model_fingerprint(config);
  nlohmann::json& recorded = record["model"]["facts"];
  if (recorded.is_null()) {
    recorded = facts;
    return;
  }
  for (auto it = facts.begin(); it != facts.end(); ++it)
    if (recorded.value(it.key(), nlohmann::json()) != it.value())
      throw Error(model + ": not the model the run started with (its " + it.key() + " was " +
                  recorded.value(it.key(), nlohmann::json()).dump() + ", now " + it.value().dump() +
                  ")");
}

}  // namespace ph::trainer
