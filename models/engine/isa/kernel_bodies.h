// The kernel bodies compiled once per x86-64 level (isa.h): plain loops over raw float
// buffers, which the compiler vectorises for the level's instructions.
//
// Rules for every file in engine/isa/ (each is compiled three times, with
// -march=x86-64-v2, -v3 and -v4, into namespaces ph::isa_v2, ph::isa_v3, ph::isa_v4):
//   - include only this header and C headers (<cmath>, <cstddef>, <cstdint>): a template
//     or inline function from another header (std::vector, xtensor) would be emitted in
//     each object with that level's instructions under one symbol name, and the linker
//     could pick the AVX-512 copy for a machine without it. The test isa_symbols checks
//     that these objects define no weak symbols.
//   - no threads: the caller (kernels.cpp, ...) slices the rows and calls a body per slice.
//   - a body's result for a row never depends on the other rows or the slice it is in.
//
// No include guard: isa.cpp includes it once per namespace to declare the three sets.
// The list of bodies, PH_ISA_KERNELS(X), builds the dispatch table (isa.h).

#ifndef PH_ISA
#error "define PH_ISA (the namespace of the level being compiled or declared)"
#endif

#include <cstddef>
#include <cstdint>

namespace ph {
namespace PH_ISA {

// y[i] = x[i] * scale for i < n (a first body, used by the dispatch test)
void scale_floats(long n, float scale, const float* x, float* y);

}  // namespace PH_ISA
}  // namespace ph

#ifndef PH_ISA_KERNELS
#define PH_ISA_KERNELS(X) \
  X(scale_floats)
#endif
