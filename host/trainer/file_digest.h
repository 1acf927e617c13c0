// The size and SHA-256 of a file: what a checkpoint's manifest records of each file and
// a run records of its data, so that --resume can tell whether a file is still the one
// the run saved or trained on.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

namespace ph::trainer {

struct FileDigest {
  uint64_t bytes = 0;
  std::string sha256;  // lowercase hex

  bool operator==(const FileDigest& o) const { return bytes == o.bytes && sha256 == o.sha256; }
  bool operator!=(const FileDigest& o) const { return !(*this == o); }
  nlohmann::json to_json() const { return {{"bytes", bytes}, {"sha256", sha256}}; }
  std::string describe() const;  // "1234 bytes, sha256 0a1b2c3d…"
};

// Reads the whole file; throws ph::Error naming it if it cannot be read.
FileDigest digest_file(const std::string& path);

}  // namespace ph::trainer
