// Crashing or hanging on request, for the tests of the host's crash report and of
// --plugin-timeout (good_prompt.cpp built as crashes_on_request and hangs_on_request).
// The environment names the call that misbehaves, so that everything before it works:
//   PH_TEST_MISBEHAVE=CALL       every time CALL runs (create, forward, backward, export)
//   PH_TEST_MISBEHAVE=CALL@STEP  only in the CALL of optimizer step STEP (ph_batch.step)
// What it does is the build's: GOOD_PROMPT_CRASHES writes to an unwritable page
// (SIGSEGV), GOOD_PROMPT_HANGS sleeps forever. Without either it does nothing.
#pragma once

#include <sys/mman.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <thread>

inline bool misbehaviour_requested(const char* call, int64_t step) {
  const char* request = std::getenv("PH_TEST_MISBEHAVE");
  if (!request) return false;
  const std::string text = request;
  const size_t at = text.find('@');
  if (text.substr(0, at) != call) return false;
  return at == std::string::npos || std::strtoll(text.c_str() + at + 1, nullptr, 10) == step;
}

inline void misbehave_if_requested(const char* call, int64_t step = -1) {
#if defined(GOOD_PROMPT_CRASHES)
  if (misbehaviour_requested(call, step)) {
    // A wild write, to a page that cannot be written: a real SIGSEGV, and not undefined
    // behaviour a sanitizer would stop at first (as a store through null would be).
    void* page = mmap(nullptr, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    *static_cast<volatile int*>(page) = 1;
  }
#elif defined(GOOD_PROMPT_HANGS)
  if (misbehaviour_requested(call, step))
    for (;;) std::this_thread::sleep_for(std::chrono::seconds(1));
#else
  (void)call;
  (void)step;
#endif
}
