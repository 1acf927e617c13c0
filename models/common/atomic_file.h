// A file written whole or not at all: the bytes go to a temporary file beside `path`,
// are flushed to disk, and the temporary is renamed over `path` by commit(). Until then
// `path` keeps its old content; an error or an exception (the destructor) removes the
// temporary, so only a crash can leave one behind (recover_run_folder removes those of a
// run folder).
#pragma once

#include <cstddef>
#include <string>

namespace ph {

class AtomicFile {
 public:
  // Creates the temporary file (mode 0644: adapter and run files are not secret).
  // Throws ph::Error naming `path` when it cannot.
  explicit AtomicFile(const std::string& path);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  // All of [data, data + size), or throws ph::Error naming the temporary file.
  void write(const void* data, size_t size);
  void write(const std::string& text) { write(text.data(), text.size()); }
  // Flushes, closes and renames into place. Throws ph::Error naming the file.
  void commit();

 private:
  std::string path_;
  std::string temp_path_;
  int fd_ = -1;
  bool committed_ = false;
};

}  // namespace ph
