#include "host/trainer/run_folder.h"

#include <filesystem>

#include "host/trainer/adapter_files.h"
#include "host/trainer/checkpoint.h"
#include "host/trainer/run_files.h"
#include "models/common/error.h"

namespace ph::trainer {

namespace fs = std::filesystem;

namespace {

void create_folder(const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw Error(dir + ": cannot create the output folder (" + ec.message() + ")");
  if (!fs::is_directory(dir)) throw Error(dir + ": the output folder is not a folder");
}

// Writes a file the way a checkpoint does, in a staging folder that is then removed.
void check_writable(const std::string& dir) {
  try {
    CheckpointWriter probe(dir);
    write_file_atomic((fs::path(probe.dir()) / "probe").string(), "probe\n");
  } catch (const Error& e) {
    throw Error(std::string("the output folder cannot be written: ") + e.what());
  }
}

}  // namespace

void prepare_output_folder(const std::string& dir, bool overwrite) {
  create_folder(dir);
  const std::string held = checkpoint_file_in(dir);
  if (!held.empty() && !overwrite)
    throw Error(dir + ": the output folder holds another run (" + held +
                "); give --overwrite to replace it, --resume " + dir +
                " to continue it, or another --output");
  if (held.empty()) recover_run_folder(dir);  // what a crashed first save left
  check_writable(dir);
}

void check_resume_folder(const std::string& dir) {
  if (!fs::exists(dir)) throw Error(dir + ": no such folder to resume");
  if (!fs::is_directory(dir)) throw Error(dir + ": not a folder (--resume takes a run's folder)");
  if (!fs::exists(fs::path(dir) / kTrainerStateFile))
    throw Error(dir +
                " holds no checkpoint (no trainer_state.json): the run stopped before its "
                "first save, or the folder holds only an adapter; start the run again "
                "without --resume");
}

}  // namespace ph::trainer
