# Compile and link flags of the hardening builds (PROMPTHOST_SANITIZE, PROMPTHOST_FUZZ).
# They apply to every target, plugins included, so a bad access inside a plugin is
# caught as well as one in the host.
if(PROMPTHOST_FUZZ AND NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
  message(FATAL_ERROR "PROMPTHOST_FUZZ needs clang (libFuzzer): configure with "
                      "-DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++")
endif()

set(_ph_sanitize_flags "")
if(PROMPTHOST_SANITIZE)
  # Every UB report is an error (no recovery), and frame pointers keep the stacks readable.
  list(APPEND _ph_sanitize_flags -fsanitize=address,undefined -fno-sanitize-recover=undefined
       -fno-omit-frame-pointer)
endif()
if(PROMPTHOST_FUZZ)
  # Coverage instrumentation for libFuzzer, without its main(): only tests/fuzz links that.
  list(APPEND _ph_sanitize_flags -fsanitize=fuzzer-no-link)
endif()
if(_ph_sanitize_flags)
  # Reports need file:line, not full debug info: line tables alone build and link faster.
  if(CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    set(CMAKE_C_FLAGS_RELWITHDEBINFO "-O2 -gline-tables-only -DNDEBUG")
    set(CMAKE_CXX_FLAGS_RELWITHDEBINFO "-O2 -gline-tables-only -DNDEBUG")
  endif()
  add_compile_options(${_ph_sanitize_flags})
  add_link_options(${_ph_sanitize_flags})
endif()
