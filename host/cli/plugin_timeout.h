// --plugin-timeout SECONDS, the same option in train, eval and generate: a watchdog
// (host/plugin/plugin_watchdog.h) ends the process when one plugin call runs longer.
#pragma once

#include <boost/program_options.hpp>

namespace ph::cli {

constexpr const char* kPluginTimeoutHelp =
    "stop with an error naming the plugin and the call when a single plugin call runs "
    "longer than this many seconds (a hung plugin); 0: no limit";

// The option's value: default 0; a negative, infinite or NaN number is a usage error.
boost::program_options::typed_value<double>* plugin_timeout_value(double& seconds);

}  // namespace ph::cli
