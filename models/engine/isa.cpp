#include "models/engine/isa.h"

#include <atomic>
#include <cstdlib>

#include "models/common/error.h"
#include "models/engine/isa/kernel_table.h"

namespace ph {

namespace {

const KernelTable kTables[] = {
#define PH_TABLE_ENTRY(name) &isa_v2::name,
    {PH_ISA_KERNELS(PH_TABLE_ENTRY)},
#undef PH_TABLE_ENTRY
#define PH_TABLE_ENTRY(name) &isa_v3::name,
    {PH_ISA_KERNELS(PH_TABLE_ENTRY)},
#undef PH_TABLE_ENTRY
#define PH_TABLE_ENTRY(name) &isa_v4::name,
    {PH_ISA_KERNELS(PH_TABLE_ENTRY)},
#undef PH_TABLE_ENTRY
};

bool supports(Isa isa) {
  __builtin_cpu_init();
  switch (isa) {
    case Isa::kV2:
      return true;  // the build's baseline
    case Isa::kV3:
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
             __builtin_cpu_supports("bmi2");
    case Isa::kV4:
      return supports(Isa::kV3) && __builtin_cpu_supports("avx512f") &&
             __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
             __builtin_cpu_supports("avx512vl");
  }
  return false;
}

Isa initial_isa() {
  const char* env = std::getenv("PROMPTHOST_ISA");
  if (!env || !*env) return best_isa();
  Isa isa;
  try {
    isa = parse_isa(env);
  } catch (const Error& e) {
    throw Error(std::string("PROMPTHOST_ISA=") + env + ": " + e.what());
  }
  if (!supports(isa))
    throw Error(std::string("PROMPTHOST_ISA=") + env + ": this CPU does not support it (best: " +
                isa_name(best_isa()) + ")");
  return isa;
}

std::atomic<int>& current() {
  static std::atomic<int> isa{(int)initial_isa()};
  return isa;
}

}  // namespace

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::kV2: return "x86-64-v2";
    case Isa::kV3: return "x86-64-v3";
    case Isa::kV4: return "x86-64-v4";
  }
  return "unknown";
}

Isa parse_isa(const std::string& name) {
  for (Isa isa : {Isa::kV2, Isa::kV3, Isa::kV4})
    if (name == isa_name(isa)) return isa;
  throw Error("unknown instruction set \"" + name + "\" (x86-64-v2, x86-64-v3 or x86-64-v4)");
}

Isa best_isa() {
  for (Isa isa : {Isa::kV4, Isa::kV3})
    if (supports(isa)) return isa;
  return Isa::kV2;
}

Isa active_isa() {
  return (Isa)current().load(std::memory_order_relaxed);
}

void set_isa(Isa isa) {
  if (!supports(isa))
    throw Error(std::string("this CPU does not support ") + isa_name(isa) + " (best: " +
                isa_name(best_isa()) + ")");
  current().store((int)isa, std::memory_order_relaxed);
}

const KernelTable& kernels() {
  return kTables[current().load(std::memory_order_relaxed)];
}

}  // namespace ph
