#!/usr/bin/env bash
# The front door. On a fresh Debian 12 machine:
#   ./prompthost.sh demo   installs what is missing, builds (Release), runs the demo
#   ./prompthost.sh test   installs what is missing, builds, runs the whole test suite
#   ./prompthost.sh build  only installs and builds
# A second run installs nothing new and rebuilds only what changed.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
build="${PROMPTHOST_BUILD_DIR:-$here/build}"
jobs="${PROMPTHOST_JOBS:-$(nproc)}"

# Debian 12 packages the build and the tests need.
packages=(g++ cmake ninja-build pkg-config git
  libxtensor-dev libxtensor-blas-dev libopenblas-dev
  libboost-dev libboost-program-options-dev libboost-filesystem-dev
  nlohmann-json3-dev libsentencepiece-dev libpcre2-dev libdlpack-dev catch2 libssl-dev)

install_missing() {
  local missing=()
  for p in "${packages[@]}"; do
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
  install_missing
  if [ ! -f "$build/build.ninja" ]; then
    cmake -S "$here" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release
  fi
  cmake --build "$build" -j "$jobs"
}

case "${1:-}" in
  build)
    build_all
    ;;
  test)
    build_all
    cd "$build"
    ctest --output-on-failure -j "$jobs"
    ;;
  demo)
    build_all
    shift
    echo "prompthost: training prefix tuning on the bundled demo model's topic task (models/demo)"
    "$build/host/prompthost" train --plugin prefix_tuning --output "$here/runs/demo-prefix_tuning" --overwrite "$@"
    ;;
  *)
    sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
