#include "host/trainer/checkpoint.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "host/trainer/adapter_files.h"
#include "host/trainer/file_digest.h"
#include "host/trainer/json_fields.h"
#include "host/trainer/run_files.h"
#include "models/common/error.h"

namespace ph::trainer {

namespace fs = std::filesystem;

namespace {

constexpr const char* kStagingPrefix = ".checkpoint.tmp-";
constexpr const char* kCommittedDir = ".checkpoint-commit";

// The test hook: SIGKILL (no cleanup, as kill -9) when `env` names `file`.
void fault_point(const char* env, const std::string& file) {
  const char* target = std::getenv(env);
  if (!target || file != target) return;
  const std::string note = std::string("prompthost: ") + env + "=" + file + ": killed\n";
  (void)!::write(STDERR_FILENO, note.data(), note.size());
  ::raise(SIGKILL);
}

// Makes a folder's entries (renames, new files) durable; best effort, as some file
// systems cannot sync a folder.
void sync_dir(const fs::path& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd < 0) return;
  (void)::fsync(fd);
  ::close(fd);
}

void rename_or_throw(const fs::path& from, const fs::path& to) {
  if (std::rename(from.c_str(), to.c_str()) != 0)
    throw Error(to.string() + ": cannot move the checkpoint's file here from " + from.string() +
                " (" + std::strerror(errno) + ")");
}

// Moves the committed folder's files into the run folder, trainer_state.json last (it
// is what --resume reads first), then removes the folder.
void install(const fs::path& committed, const fs::path& run_dir) {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(committed))
    names.push_back(entry.path().filename().string());
  std::sort(names.begin(), names.end(), [](const std::string& a, const std::string& b) {
    return (a == kTrainerStateFile) != (b == kTrainerStateFile) ? b == kTrainerStateFile : a < b;
  });
  for (const std::string& name : names) {
    rename_or_throw(committed / name, run_dir / name);
    fault_point("PROMPTHOST_FAULT_AFTER_INSTALL", name);
  }
  sync_dir(run_dir);
  fs::remove(committed);
}

bool is_temporary_of_run_file(const std::string& name) {
  for (const std::string& file : checkpoint_files()) {
    const std::string tmp = file + ".tmp";
    if (name.rfind(tmp, 0) == 0 && (name.size() == tmp.size() || name[tmp.size()] == '-'))
      return true;
  }
  return false;
}

}  // namespace

const std::vector<std::string>& checkpoint_files() {
  static const std::vector<std::string> files = {
      kAdapterConfigFile, kAdapterModelFile, kAdapterInfoFile, kTrainingStateFile,
      kMetricsFile,       kLossCurveFile,    kTrainerStateFile};
  return files;
}

CheckpointWriter::CheckpointWriter(const std::string& run_dir) : run_dir_(run_dir) {
  std::error_code ignored;  // (re)made if it went away during the run; mkdtemp then says why
  fs::create_directories(run_dir, ignored);
  std::string templ = (fs::path(run_dir) / kStagingPrefix).string() + "XXXXXX";
  if (!::mkdtemp(templ.data()))
    throw Error(run_dir + ": cannot create a folder for the checkpoint (" + std::strerror(errno) +
                ")");
  staging_ = templ;
}

CheckpointWriter::~CheckpointWriter() {
  if (committed_) return;
  std::error_code ignored;
  fs::remove_all(staging_, ignored);
}

void CheckpointWriter::add(const std::string& file) {
  files_[file] = digest_file((fs::path(staging_) / file).string()).to_json();
  fault_point("PROMPTHOST_FAULT_AFTER_FILE", file);
}

void CheckpointWriter::commit(nlohmann::json state, int step) {
  state["checkpoint"] = {{"step", step}, {"files", files_}};
  write_json_atomic((fs::path(staging_) / kTrainerStateFile).string(), state);
  fault_point("PROMPTHOST_FAULT_AFTER_FILE", kTrainerStateFile);
  sync_dir(staging_);
  const fs::path committed = fs::path(run_dir_) / kCommittedDir;
  rename_or_throw(staging_, committed);  // the commit: from here on the checkpoint counts
  committed_ = true;
  sync_dir(run_dir_);
  install(committed, run_dir_);
}

std::vector<std::string> recover_run_folder(const std::string& run_dir) {
  std::vector<std::string> done;
  if (!fs::is_directory(run_dir)) return done;
  const fs::path committed = fs::path(run_dir) / kCommittedDir;
  if (fs::is_directory(committed)) {
    install(committed, run_dir);
    done.push_back(run_dir + ": finished saving the checkpoint a crash interrupted");
  }
  for (const auto& entry : fs::directory_iterator(run_dir)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind(kStagingPrefix, 0) == 0 && entry.is_directory()) {
      fs::remove_all(entry.path());
      done.push_back(run_dir + ": removed " + name + ", a checkpoint a crash left unfinished");
    } else if (is_temporary_of_run_file(name) && entry.is_regular_file()) {
      fs::remove(entry.path());
      done.push_back(run_dir + ": removed " + name + ", a file a crash left half-written");
    }
  }
  return done;
}

std::string checkpoint_file_in(const std::string& dir) {
  if (fs::exists(fs::path(dir) / kCommittedDir)) return kCommittedDir;
  for (const std::string& file : checkpoint_files())
    if (fs::exists(fs::path(dir) / file)) return file;
  return "";
}

void remove_checkpoint(const std::string& dir) {
  fs::remove(fs::path(dir) / kTrainerStateFile);  // first: the folder is no run any more
  for (const std::string& file : checkpoint_files()) fs::remove(fs::path(dir) / file);
  fs::remove_all(fs::path(dir) / kCommittedDir);
  recover_run_folder(dir);  // staging folders and temporary files
}

bool verify_checkpoint(const std::string& run_dir, const nlohmann::json& state, int step) {
  const JsonPlace place{(fs::path(run_dir) / kTrainerStateFile).string(), ""};
  if (!state.contains("checkpoint")) return false;
  const nlohmann::json& manifest = state["checkpoint"];
  const int saved_step = json_field<int>(manifest, "step", place / "checkpoint");
  if (saved_step != step)
    (place / "checkpoint" / "step")
        .fail("= " + std::to_string(saved_step) + " but the loop state is at step " +
              std::to_string(step));
  const nlohmann::json& files = json_member(manifest, "files", place / "checkpoint");
  if (!files.is_object()) (place / "checkpoint" / "files").fail("must be an object");
  for (auto it = files.begin(); it != files.end(); ++it) {
    const JsonPlace entry = place / "checkpoint" / "files" / it.key();
    if (std::find(checkpoint_files().begin(), checkpoint_files().end(), it.key()) ==
        checkpoint_files().end())
      entry.fail("is not a file of a checkpoint");
    FileDigest saved;
    saved.bytes = json_field<uint64_t>(it.value(), "bytes", entry);
    saved.sha256 = json_field<std::string>(it.value(), "sha256", entry);
    const std::string path = (fs::path(run_dir) / it.key()).string();
    if (!fs::exists(path))
      throw Error(path + ": missing: the checkpoint of step " + std::to_string(step) +
                  " in trainer_state.json lists it");
    const FileDigest now = digest_file(path);
    if (now != saved)
      throw Error(path + ": not the file saved with the checkpoint of step " +
                  std::to_string(step) + " (" + now.describe() + ", trainer_state.json lists " +
                  saved.describe() +
                  "): it was changed or comes from another save; the folder cannot be resumed");
  }
  return true;
}

}  // namespace ph::trainer
