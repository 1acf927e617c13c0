#include "host/cli/plugin_timeout.h"

#include <cmath>
#include <cstdio>
#include <string>

namespace ph::cli {

namespace po = boost::program_options;

po::typed_value<double>* plugin_timeout_value(double& seconds) {
  return po::value(&seconds)->default_value(0.0, "0")->notifier([](double s) {
    if (std::isfinite(s) && s >= 0) return;
    char given[32];
    std::snprintf(given, sizeof given, "%g", s);
    throw po::error(std::string("--plugin-timeout must be a number of seconds >= 0 (0: no "
                                "limit), got ") +
                    given);
  });
}

}  // namespace ph::cli
