// Run-time dispatch of the engine's kernels by instruction set.
//
// The kernel bodies (engine/isa/) are built three times — for x86-64-v2 (SSE4.2),
// x86-64-v3 (AVX2, FMA) and x86-64-v4 (AVX-512) — and one portable binary calls the
// widest set the CPU supports. Results are bit-identical for a given level and any
// thread count; levels differ in the last bits (FMA contracts a*b+c into one rounding).
//
// PROMPTHOST_ISA=x86-64-v2|x86-64-v3|x86-64-v4 in the environment (or set_isa) chooses a
// lower level, for tests and benchmarks; a level the CPU lacks is refused.
#pragma once

#include <string>

namespace ph {

enum class Isa { kV2 = 0, kV3 = 1, kV4 = 2 };

const char* isa_name(Isa isa);  // "x86-64-v2", ...
// Parses isa_name()'s names; throws ph::Error naming the accepted ones otherwise.
Isa parse_isa(const std::string& name);
// The widest level this CPU (and its OS, for the AVX state) supports.
Isa best_isa();
// The level in use: PROMPTHOST_ISA's if set (checked on first use), else best_isa().
Isa active_isa();
// Throws ph::Error if the CPU lacks `isa`. Not thread-safe with running kernels: call it
// before the engine starts work.
void set_isa(Isa isa);

// The dispatch table: one pointer per body of PH_ISA_KERNELS, for the active level.
struct KernelTable;
const KernelTable& kernels();

}  // namespace ph
