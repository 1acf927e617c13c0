#include "models/common/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "models/common/error.h"

namespace ph {

namespace {

std::string system_error(const std::string& what, const std::string& path) {
  return "cannot " + what + " " + path + ": " + std::strerror(errno);
}

// Closes the descriptor on every path out of the constructor: the mapping, once made,
// does not need it.
struct FdCloser {
  int fd;
  ~FdCloser() { ::close(fd); }
};

}  // namespace

MappedFile::MappedFile(const std::string& path) : path_(path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw Error(system_error("open", path));
  FdCloser closer{fd};

  struct stat st {};
  if (::fstat(fd, &st) != 0) throw Error(system_error("stat", path));
  if (!S_ISREG(st.st_mode)) throw Error("cannot map " + path + ": not a regular file");
  size_ = static_cast<size_t>(st.st_size);
  if (size_ == 0) return;  // mmap rejects a zero length; an empty file maps to nothing

  void* addr = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
  if (addr == MAP_FAILED) throw Error(system_error("mmap", path));
  data_ = static_cast<const uint8_t*>(addr);
}

MappedFile::~MappedFile() {
  if (data_) ::munmap(const_cast<uint8_t*>(data_), size_);
}

}  // namespace ph
