// A whole file mapped read-only into memory. Weights loaded from it point straight into
// the mapping, so it is a WeightStorage: a Model holds it for as long as they are used.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "models/engine/model.h"

namespace ph {

class MappedFile : public WeightStorage {
 public:
  // Maps `path`; throws ph::Error naming the path when it cannot be opened, stat'ed or
  // mapped. An empty file is valid: size() is 0 and data() is nullptr.
  explicit MappedFile(const std::string& path);
  ~MappedFile() override;

  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const std::string& path() const { return path_; }
  size_t size() const { return size_; }
  const uint8_t* data() const { return data_; }

 private:
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace ph
