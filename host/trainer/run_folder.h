// The folder a run writes (--output) and the folder --resume continues: checked before
// any work, so that a run is never lost at its first save and never mixed with another.
#pragma once

#include <string>

namespace ph::trainer {

// Creates `dir` if needed and checks that files can be created in it. A folder holding
// another run (a checkpoint's files) is refused unless `overwrite`; that run is removed
// only once the new one is ready to train (remove_checkpoint), so a mistake in the new
// run's settings loses nothing. Throws ph::Error naming the folder.
void prepare_output_folder(const std::string& dir, bool overwrite);

// Throws ph::Error saying why `dir` cannot be resumed: no such folder, or no checkpoint
// in it (a run killed before its first save leaves it so).
void check_resume_folder(const std::string& dir);

}  // namespace ph::trainer
