#include "models/common/atomic_file.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "models/common/error.h"

namespace ph {

AtomicFile::AtomicFile(const std::string& path) : path_(path), temp_path_(path + ".tmp-XXXXXX") {
  fd_ = ::mkstemp(temp_path_.data());
  if (fd_ < 0) {
    committed_ = true;  // nothing was created, nothing to remove
    throw Error(path + ": cannot create a temporary file beside it (" + std::strerror(errno) + ")");
  }
  ::fchmod(fd_, 0644);  // mkstemp makes it private
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_) ::unlink(temp_path_.c_str());
}

void AtomicFile::write(const void* data, size_t size) {
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t n = ::write(fd_, p, size);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw Error(temp_path_ + ": write failed (" + std::strerror(errno) + ")");
    p += n;
    size -= static_cast<size_t>(n);
  }
}

void AtomicFile::commit() {
  const int fd = fd_;
  fd_ = -1;
  if (::fsync(fd) != 0) {
    const std::string why = std::strerror(errno);
    ::close(fd);
    throw Error(temp_path_ + ": cannot flush (" + why + ")");
  }
  if (::close(fd) != 0) throw Error(temp_path_ + ": cannot flush (" + std::strerror(errno) + ")");
  if (std::rename(temp_path_.c_str(), path_.c_str()) != 0)
    throw Error(path_ + ": cannot rename from " + temp_path_ + " (" + std::strerror(errno) + ")");
  committed_ = true;
}

}  // namespace ph
