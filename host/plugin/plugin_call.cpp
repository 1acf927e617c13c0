#include "host/plugin/plugin_call.h"

#include <time.h>

#include <atomic>

namespace ph::host {

// One thread's call. Only its thread writes it; a sequence number (odd while the fields
// change) lets another thread read the three fields as one snapshot.
struct CallSlot {
  std::atomic<bool> owned{false};
  std::atomic<uint32_t> seq{0};
  std::atomic<const char*> plugin{nullptr};
  std::atomic<const char*> call{nullptr};
  std::atomic<int64_t> started_ns{0};
};

namespace {

constexpr int kSlots = 64;
CallSlot g_slots[kSlots];  // constant-initialised: usable before and after main

// This thread's slot. initial-exec: a signal handler reads it without the dynamic loader.
__attribute__((tls_model("initial-exec"))) thread_local CallSlot* t_slot = nullptr;
// Set once the thread's thread_local objects are being destroyed: calls made later (a
// plugin unloaded by a static destructor) are not tracked rather than claim a slot anew.
__attribute__((tls_model("initial-exec"))) thread_local bool t_ending = false;

// Gives the slot back when its thread ends.
struct SlotRelease {
  ~SlotRelease() {
    t_ending = true;
    if (!t_slot) return;
    t_slot->owned.store(false, std::memory_order_release);
    t_slot = nullptr;
  }
};

CallSlot* this_thread_slot() noexcept {
  if (t_slot || t_ending) return t_slot;
  for (CallSlot& slot : g_slots) {
    bool free = false;
    if (slot.owned.compare_exchange_strong(free, true, std::memory_order_acq_rel)) {
      thread_local SlotRelease release;  // its destructor runs at this thread's exit
      t_slot = &slot;
      return t_slot;
    }
  }
  return nullptr;
}

void publish(CallSlot& slot, const char* plugin, const char* call, int64_t started_ns) noexcept {
  const uint32_t seq = slot.seq.load(std::memory_order_relaxed);
  slot.seq.store(seq + 1, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_release);
  slot.plugin.store(plugin, std::memory_order_relaxed);
  slot.call.store(call, std::memory_order_relaxed);
  slot.started_ns.store(started_ns, std::memory_order_relaxed);
  slot.seq.store(seq + 2, std::memory_order_release);
}

RunningPluginCall read(const CallSlot& slot) noexcept {
  RunningPluginCall r;
  // Bounded: a signal handler may have interrupted its own thread mid-publish, and the
  // fields it then reads are each still a valid value (the old or the new one).
  for (int attempt = 0; attempt < 1000; ++attempt) {
    const uint32_t before = slot.seq.load(std::memory_order_acquire);
    r.plugin = slot.plugin.load(std::memory_order_relaxed);
    r.call = slot.call.load(std::memory_order_relaxed);
    r.started_ns = slot.started_ns.load(std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_acquire);
    if (!(before & 1) && slot.seq.load(std::memory_order_relaxed) == before) break;
  }
  return r;
}

}  // namespace

PluginCallScope::PluginCallScope(const char* plugin, const char* call) noexcept
    : slot_(this_thread_slot()) {
  if (!slot_) return;
  outer_plugin_ = slot_->plugin.load(std::memory_order_relaxed);
  outer_call_ = slot_->call.load(std::memory_order_relaxed);
  outer_started_ns_ = slot_->started_ns.load(std::memory_order_relaxed);
  publish(*slot_, plugin, call, monotonic_ns());
}

PluginCallScope::~PluginCallScope() {
  if (slot_) publish(*slot_, outer_plugin_, outer_call_, outer_started_ns_);
}

RunningPluginCall running_plugin_call() noexcept {
  if (t_slot) {
    RunningPluginCall own = read(*t_slot);
    if (own.plugin) {
      own.on_this_thread = true;
      return own;
    }
  }
  return longest_running_plugin_call();
}

RunningPluginCall longest_running_plugin_call() noexcept {
  RunningPluginCall longest;
  for (const CallSlot& slot : g_slots) {
    if (!slot.owned.load(std::memory_order_acquire)) continue;
    const RunningPluginCall r = read(slot);
    if (r.plugin && (!longest.plugin || r.started_ns < longest.started_ns)) longest = r;
  }
  return longest;
}

int64_t monotonic_ns() noexcept {
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC, &now);
  return (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
}

}  // namespace ph::host
