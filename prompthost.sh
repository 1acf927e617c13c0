#!/usr/bin/env bash
# The front door. On a fresh Debian 12 machine:
#   ./prompthost.sh demo   installs what is missing, builds (Release), runs the demo
#   ./prompthost.sh test   installs what is missing, builds, runs the whole test suite
#   ./prompthost.sh build  only installs and builds
#   ./prompthost.sh sanitize  the hardening checks CI runs after `test`: a clang build
#                          with AddressSanitizer + UndefinedBehaviorSanitizer (build-asan/)
#                          runs the test suite (not the npm tokenizer comparison nor the SDK's
#                          out-of-tree example), then every fuzz target for
#                          FUZZ_SECONDS (default 30) over its committed corpus
#   ./prompthost.sh fuzz [SECONDS] [TARGET...]  the fuzz targets alone, for longer
#                          (default 600 s each; FUZZ_RUNS=N stops after N executions)
# A second run installs nothing new and rebuilds only what changed.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
build="${PROMPTHOST_BUILD_DIR:-$here/build}"
jobs="${PROMPTHOST_JOBS:-$(nproc)}"

# Debian 12 packages the build and the tests need.
packages=(g++ cmake ninja-build pkg-config git
  libxtensor-dev libxtensor-blas-dev libopenblas-dev
  libboost-dev libboost-program-options-dev libboost-filesystem-dev
  nlohmann-json3-dev libsentencepiece-dev libpcre2-dev libutf8proc-dev libdlpack-dev catch2 libssl-dev
  openmpi-bin libopenmpi-dev)

# Node.js and npm run the reference comparisons (Hugging Face's tokenizers, the official
# OpenAI client against the server): Debian's, unless a Node.js with npm is already there.
if ! command -v npm >/dev/null 2>&1; then packages+=(nodejs npm); fi

# What the sanitizer and fuzz build adds (clang with its sanitizer and libFuzzer runtimes).
hardening_packages=(clang libclang-rt-14-dev)

install_missing() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
      sudo=(sudo)
    else
      echo "prompthost: need root or sudo to apt-get install: ${missing[*]}" >&2
      exit 1
    fi
  fi
  echo "prompthost: installing ${missing[*]}"
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

build_all() {
  install_missing "${packages[@]}"
  if [ ! -f "$build/build.ninja" ]; then
    cmake -S "$here" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release
  fi
  cmake --build "$build" -j "$jobs"
}

# The sanitizer + fuzz build: clang, RelWithDebInfo (optimised, with line numbers in
# the reports), every target instrumented.
asan_build="${PROMPTHOST_ASAN_BUILD_DIR:-$here/build-asan}"
build_hardened() {
  install_missing "${packages[@]}" "${hardening_packages[@]}"
  if [ ! -f "$asan_build/build.ninja" ]; then
    # Without Open MPI: CI's proof that such a build still builds and passes (the Release
    # build runs the mpirun tests).
    CC=clang CXX=clang++ cmake -S "$here" -B "$asan_build" -G Ninja \
      -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPROMPTHOST_SANITIZE=ON -DPROMPTHOST_FUZZ=ON \
      -DPROMPTHOST_MPI=OFF
  fi
  cmake --build "$asan_build" -j "$jobs"
}
# Any report fails the run; leaks are reported too (LeakSanitizer).
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:detect_stack_use_after_return=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"

case "${1:-}" in
  build)
    build_all
    ;;
  test)
    build_all
    cd "$build"
    ctest --output-on-failure -j "$jobs"
    ;;
  sanitize)
    build_hardened
    # The npm reference comparisons (tokenizer ids against Hugging Face's library) run in
    # the Release suite; under the sanitizers they would only repeat it, slowly.
    # The out-of-tree SDK example only repeats the Release suite's packaging check (a
    # CMake configure and build, a minute), with nothing of ours to instrument.
    (cd "$asan_build" && ctest --output-on-failure -j "$jobs" -E '^(tokenizer_reference|sdk_example_out_of_tree)$')
    "$here/tests/fuzz/run.sh" "$asan_build" "${FUZZ_SECONDS:-30}"
    ;;
  fuzz)
    build_hardened
    shift
    "$here/tests/fuzz/run.sh" "$asan_build" "${1:-600}" "${@:2}"
    ;;
  demo)
    build_all
    shift
    echo "prompthost: training prefix tuning on the bundled demo model's topic task (models/demo)"
    "$build/host/prompthost" train --plugin prefix_tuning --output "$here/runs/demo-prefix_tuning" --overwrite "$@"
    ;;
  *)
    sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
