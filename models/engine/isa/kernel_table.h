// The dispatch table of the kernel bodies (isa.h): the three levels' declarations and one
// function pointer per body of PH_ISA_KERNELS. Callers: `ph::kernels().name(args...)`.
#pragma once

#define PH_ISA isa_v2
#include "models/engine/isa/kernel_bodies.h"
#undef PH_ISA
#define PH_ISA isa_v3
#include "models/engine/isa/kernel_bodies.h"
#undef PH_ISA
#define PH_ISA isa_v4
#include "models/engine/isa/kernel_bodies.h"
#undef PH_ISA

#include "models/engine/isa.h"

namespace ph {

struct KernelTable {
#define PH_TABLE_FIELD(name) decltype(&isa_v2::name) name;
  PH_ISA_KERNELS(PH_TABLE_FIELD)
#undef PH_TABLE_FIELD
};

}  // namespace ph
