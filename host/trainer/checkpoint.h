// A run folder's checkpoint: the adapter, training_state.safetensors, metrics.jsonl,
// loss_curve.svg and trainer_state.json, saved as one unit, so that a crash at any point
// leaves the previous checkpoint or the new one, never a mix of the two.
//
// Saving writes every file into a staging folder inside the run folder
// (.checkpoint.tmp-XXXXXX), trainer_state.json last: it names the step and lists every
// other file with its size and SHA-256 (the manifest). Renaming the staging folder to
// .checkpoint-commit commits the checkpoint; its files are then moved into the run folder,
// trainer_state.json last, and the emptied folder is removed. The next run on the folder
// (a new run or --resume) first removes an uncommitted staging folder and finishes moving
// a committed one (recover_run_folder).
//
// For tests, two environment variables kill the process (SIGKILL, as kill -9 would) at a
// point of saving: PROMPTHOST_FAULT_AFTER_FILE=NAME once the file NAME is written to the
// staging folder (before the commit), PROMPTHOST_FAULT_AFTER_INSTALL=NAME once the
// committed file NAME is moved into the run folder.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace ph::trainer {

constexpr const char* kMetricsFile = "metrics.jsonl";
constexpr const char* kLossCurveFile = "loss_curve.svg";

// Every file a checkpoint holds, trainer_state.json last.
const std::vector<std::string>& checkpoint_files();

class CheckpointWriter {
 public:
  // Creates the staging folder inside run_dir (and run_dir, if it went away).
  explicit CheckpointWriter(const std::string& run_dir);
  // Removes the staging folder unless the checkpoint was committed (an error while saving
  // leaves no temporary files behind).
  ~CheckpointWriter();
  CheckpointWriter(const CheckpointWriter&) = delete;
  CheckpointWriter& operator=(const CheckpointWriter&) = delete;

  // The staging folder: where every file of the checkpoint is written.
  const std::string& dir() const { return staging_; }
  // Records `file`, written into dir(), in the manifest.
  void add(const std::string& file);
  // Writes trainer_state.json (`state` plus "checkpoint": {"step", "files"}), commits the
  // checkpoint and moves its files into the run folder.
  void commit(nlohmann::json state, int step);

 private:
  std::string run_dir_, staging_;
  nlohmann::json files_ = nlohmann::json::object();
  bool committed_ = false;
};

// Leaves run_dir with one whole checkpoint (or none) after a crash: finishes moving a
// committed checkpoint's files, removes an uncommitted staging folder and the temporary
// files of interrupted writes. Returns a line for the log per thing done.
std::vector<std::string> recover_run_folder(const std::string& run_dir);

// The first file of a checkpoint (whole or being installed) in dir, or "" if none: a
// folder that holds one holds a run.
std::string checkpoint_file_in(const std::string& dir);
// Removes every file of a checkpoint from dir, trainer_state.json first, and what a
// crash while saving left (--overwrite). Other files stay.
void remove_checkpoint(const std::string& dir);

// Checks the files of run_dir against the manifest in its trainer_state.json (`state`):
// it names `step`, and every file it lists has its recorded size and SHA-256. Throws
// ph::Error naming the first file that differs. Returns false, checking nothing, for a
// trainer_state.json without a manifest (an older PromptHost's).
bool verify_checkpoint(const std::string& run_dir, const nlohmann::json& state, int step);

}  // namespace ph::trainer
