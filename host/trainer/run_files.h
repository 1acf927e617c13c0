// Files a training run writes, each by write-to-temporary-then-rename so a crash never
// leaves a half-written file: text/JSON files, the metrics log, the loss curve.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace ph::trainer {

// Writes `content` to a temporary file beside `path` (path.tmp-XXXXXX), flushes it to
// disk and renames it over `path`; on an error the temporary file is removed.
void write_file_atomic(const std::string& path, const std::string& content);
void write_json_atomic(const std::string& path, const nlohmann::json& value);
nlohmann::json read_json(const std::string& path);

struct CurvePoint {
  double step;
  double value;
};

// An SVG picture of the training loss (and evaluation loss points, if any) by step.
std::string loss_curve_svg(const std::vector<CurvePoint>& train,
                           const std::vector<CurvePoint>& eval);

}  // namespace ph::trainer
