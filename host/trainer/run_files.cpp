#include "host/trainer/run_files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include "models/common/error.h"
#include "models/common/json_file.h"

namespace ph::trainer {

namespace {

// The temporary file of an atomic write: removed unless it was renamed into place, so
// an error leaves nothing behind (a crash may: recover_run_folder removes those).
struct TempFile {
  std::string path;
  int fd = -1;
  bool renamed = false;
  ~TempFile() {
    if (fd >= 0) ::close(fd);
    if (!renamed) ::unlink(path.c_str());
  }
};

}  // namespace

void write_file_atomic(const std::string& path, const std::string& content) {
  TempFile tmp{path + ".tmp-XXXXXX"};
  tmp.fd = ::mkstemp(tmp.path.data());
  if (tmp.fd < 0) {
    tmp.renamed = true;  // nothing was created
    throw Error(path + ": cannot create a temporary file beside it (" + std::strerror(errno) + ")");
  }
  ::fchmod(tmp.fd, 0644);  // mkstemp makes it private; run files are not secret
  size_t done = 0;
  while (done < content.size()) {
    const ssize_t n = ::write(tmp.fd, content.data() + done, content.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw Error(tmp.path + ": write failed (" + std::strerror(errno) + ")");
    }
    done += (size_t)n;
  }
  const int fd = tmp.fd;
  tmp.fd = -1;
  if (::fsync(fd) != 0) {
    const std::string why = std::strerror(errno);
    ::close(fd);
    throw Error(tmp.path + ": cannot flush (" + why + ")");
  }
  if (::close(fd) != 0) throw Error(tmp.path + ": cannot flush (" + std::strerror(errno) + ")");
  if (std::rename(tmp.path.c_str(), path.c_str()) != 0)
    throw Error(path + ": cannot rename from " + tmp.path + " (" + std::strerror(errno) + ")");
  tmp.renamed = true;
}

void write_json_atomic(const std::string& path, const nlohmann::json& value) {
  write_file_atomic(path, value.dump(2) + "\n");
}

nlohmann::json read_json(const std::string& path) { return read_json_file(path); }

std::string loss_curve_svg(const std::vector<CurvePoint>& train,
                           const std::vector<CurvePoint>& eval) {
  const double W = 640, H = 360, left = 60, right = 20, top = 30, bottom = 40;
  double x0 = 1e300, x1 = -1e300, y0 = 1e300, y1 = -1e300;
  for (const auto* series : {&train, &eval})
    for (const auto& p : *series) {
      if (!std::isfinite(p.value)) continue;
      x0 = std::min(x0, p.step), x1 = std::max(x1, p.step);
      y0 = std::min(y0, p.value), y1 = std::max(y1, p.value);
    }
  if (x0 > x1) x0 = 0, x1 = 1, y0 = 0, y1 = 1;
  if (x1 == x0) x1 = x0 + 1;
  if (y1 == y0) y1 = y0 + 1;
  auto X = [&](double s) { return left + (s - x0) / (x1 - x0) * (W - left - right); };
  auto Y = [&](double v) { return H - bottom - (v - y0) / (y1 - y0) * (H - top - bottom); };
  std::ostringstream svg;
  svg << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << W << "\" height=\"" << H
      << "\" font-family=\"sans-serif\" font-size=\"12\">\n"
      << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
      << "<text x=\"" << left
      << "\" y=\"18\">loss by step (train: blue line, eval: red dots)</text>\n"
      << "<line x1=\"" << left << "\" y1=\"" << H - bottom << "\" x2=\"" << W - right << "\" y2=\""
      << H - bottom << "\" stroke=\"black\"/>\n"
      << "<line x1=\"" << left << "\" y1=\"" << top << "\" x2=\"" << left << "\" y2=\""
      << H - bottom << "\" stroke=\"black\"/>\n";
  for (int i = 0; i <= 4; ++i) {  // axis labels
    const double v = y0 + (y1 - y0) * i / 4, s = x0 + (x1 - x0) * i / 4;
    svg << "<text x=\"4\" y=\"" << Y(v) + 4 << "\">" << std::round(v * 1000) / 1000 << "</text>\n"
        << "<text x=\"" << X(s) - 10 << "\" y=\"" << H - bottom + 18 << "\">" << std::round(s)
        << "</text>\n";
  }
  if (!train.empty()) {
    svg << "<polyline fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"1.5\" points=\"";
    for (const auto& p : train)
      if (std::isfinite(p.value)) svg << X(p.step) << "," << Y(p.value) << " ";
    svg << "\"/>\n";
  }
  for (const auto& p : eval)
    if (std::isfinite(p.value))
      svg << "<circle cx=\"" << X(p.step) << "\" cy=\"" << Y(p.value)
          << "\" r=\"4\" fill=\"#d62728\"/>\n";
  svg << "<text x=\"" << (W / 2) << "\" y=\"" << H - 6 << "\">step</text>\n</svg>\n";
  return svg.str();
}

}  // namespace ph::trainer
