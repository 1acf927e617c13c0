// ph.host.random/1: counter-based random numbers for plugin initialisation.
//
// Element i of a fill is a pure function of (seed, stream, i), computed with 64-bit
// integer arithmetic only (splitmix64's mixer, Box-Muller for normals in double), so
// the same call gives the same tensor on every machine, whatever its strides and
// whatever was drawn before. `i` is the element's row-major index, not its address.
#pragma once

#include <cstdint>

#include "prompthost_sdk/plugin_abi.h"

namespace ph::host {

const ph_host_random* random_service();

// The raw 64-bit draw number `counter` of (seed, stream); exposed for tests.
uint64_t random_bits(uint64_t seed, uint64_t stream, uint64_t counter);

}  // namespace ph::host
