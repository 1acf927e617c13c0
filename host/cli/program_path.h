// How to spell this program in a hint printed to the user ("generate with it: ..."):
// `prompthost` when that is what the PATH finds, else the path of this executable
// (relative to the current folder when inside it, e.g. build/host/prompthost).
#pragma once

#include <string>

namespace ph::cli {

std::string program_path();

}  // namespace ph::cli
