#include "host/trainer/file_digest.h"

#include <openssl/evp.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <memory>
#include <vector>

#include "models/common/error.h"

namespace ph::trainer {

std::string FileDigest::describe() const {
  return std::to_string(bytes) + " bytes, sha256 " + sha256.substr(0, 12) + "…";
}

FileDigest digest_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot open (" + std::strerror(errno) + ")");
  const std::unique_ptr<EVP_MD_CTX, void (*)(EVP_MD_CTX*)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1)
    throw Error(path + ": cannot start a SHA-256 digest");
  FileDigest d;
  std::vector<char> buffer(1 << 20);
  while (in) {
    in.read(buffer.data(), (std::streamsize)buffer.size());
    const size_t n = (size_t)in.gcount();
    EVP_DigestUpdate(ctx.get(), buffer.data(), n);
    d.bytes += n;
  }
  if (in.bad()) throw Error(path + ": read failed");
  unsigned char hash[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_DigestFinal_ex(ctx.get(), hash, &length);
  static const char hex[] = "0123456789abcdef";
  for (unsigned int i = 0; i < length; ++i) {
    d.sha256 += hex[hash[i] >> 4];
    d.sha256 += hex[hash[i] & 15];
  }
  return d;
}

}  // namespace ph::trainer
