#include "host/trainer/run_files.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "models/common/atomic_file.h"
#include "models/common/error.h"
#include "models/common/json_file.h"

namespace ph::trainer {

void write_file_atomic(const std::string& path, const std::string& content) {
  AtomicFile file(path);
  file.write(content);
  file.commit();
}

void write_json_atomic(const std::string& path, const nlohmann::json& value) {
  write_file_atomic(path, value.dump(2) + "\n");
}

nlohmann::json read_json(const std::string& path) {
  return read_json_file(path);
}

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
