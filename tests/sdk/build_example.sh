#!/usr/bin/env bash
# The SDK as a plugin author uses it: install the current build into a fresh prefix, build
# examples/minimal_prompt_tuning out of tree against that prefix alone, and check the
# plugin it makes (one exported symbol; the conformance runner; `prompthost plugins`).
#
#   build_example.sh BUILD_DIR SOURCE_DIR WORK_DIR [CMAKE_GENERATOR [CXX_COMPILER]]
#
# Exit 0: every check ran and passed. Exit 77 (CTest SKIP_RETURN_CODE): what could run
# passed, but a check could not run yet (its reason is printed as "skipped: ...").
# Anything else: a check failed ("FAIL: ...").
set -uo pipefail

if [ $# -lt 3 ]; then
  sed -n '6p' "$0" | sed 's/^# *//' >&2
  exit 2
fi
build="$(cd "$1" && pwd)" || exit 2
source_dir="$(cd "$2" && pwd)" || exit 2
work="$3"
generator="${4:-}"
cxx="${5:-}"
cmake="${CMAKE_COMMAND:-cmake}"
example="$source_dir/examples/minimal_prompt_tuning"
skipped=()

fail() {
  echo "FAIL: $*" >&2
  exit 1
}
ok() { echo "ok: $*"; }
skip() {
  echo "skipped: $*"
  skipped+=("$*")
}
# Runs a command, showing it and its output; returns its exit code.
run() {
  echo "+ $*"
  "$@"
}

rm -rf "$work"
mkdir -p "$work" || fail "cannot create $work"
work="$(cd "$work" && pwd)" || fail "cannot enter $work"
prefix="$work/prefix"
example_build="$work/build"
plugin="$example_build/ph_minimal_prompt_tuning.so"
unset DESTDIR  # install exactly into $prefix

# 1. Install the whole build (SDK, programs, plugins).
run "$cmake" --install "$build" --prefix "$prefix" >"$work/install.log" 2>&1 ||
  { cat "$work/install.log" >&2; fail "cmake --install $build (is everything built?)"; }
for f in include/prompthost_sdk/plugin_abi.h include/prompthost_sdk/sdk.hpp \
  lib/cmake/PromptHost/PromptHostConfig.cmake lib/cmake/PromptHost/PromptHostConfigVersion.cmake \
  lib/cmake/PromptHost/PromptHostTargets.cmake lib/cmake/PromptHost/PromptHostAddPlugin.cmake \
  lib/cmake/PromptHost/prompthost_plugin.map bin/prompthost; do
  [ -e "$prefix/$f" ] || fail "the install has no $f"
done
shopt -s nullglob
for so in "$build"/plugins/*.so; do
  [ -e "$prefix/lib/prompthost/plugins/$(basename "$so")" ] ||
    fail "built plugin $(basename "$so") is not installed in lib/prompthost/plugins"
done
shopt -u nullglob
ok "installed into $prefix"

# 2. Configure and build the example against the installed package only.
configure=("$cmake" -S "$example" -B "$example_build" -DCMAKE_PREFIX_PATH="$prefix"
  -DCMAKE_BUILD_TYPE=Release -DCMAKE_EXPORT_COMPILE_COMMANDS=ON
  -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF -DCMAKE_FIND_USE_SYSTEM_PACKAGE_REGISTRY=OFF)
[ -n "$generator" ] && configure+=(-G "$generator")
[ -n "$cxx" ] && configure+=(-DCMAKE_CXX_COMPILER="$cxx")
run "${configure[@]}" || fail "configuring the example against $prefix"
found="$(sed -n 's/^PromptHost_DIR:PATH=//p' "$example_build/CMakeCache.txt")"
[ "$found" = "$prefix/lib/cmake/PromptHost" ] ||
  fail "find_package(PromptHost) found '$found', not the installed $prefix/lib/cmake/PromptHost"
run "$cmake" --build "$example_build" || fail "building the example"
[ -f "$plugin" ] || fail "the example build made no $plugin"
if grep -qF "$source_dir/sdk/include" "$example_build/compile_commands.json"; then
  fail "the example was compiled with the source tree's sdk/include, not the installed headers"
fi
ok "built $plugin out of tree against the installed SDK"

# 3. Exactly one exported symbol: the entry.
exports="$(nm -D --defined-only "$plugin" | awk '{print $NF}' | tr '\n' ' ')" ||
  fail "nm -D $plugin"
echo "exported: $exports"
[ "$exports" = "ph_plugin_entry_v1 " ] ||
  fail "the plugin must export only ph_plugin_entry_v1, it exports: $exports"
ok "only ph_plugin_entry_v1 is exported"

# 4. The conformance runner, when the build has one.
if [ -x "$prefix/bin/prompthost-validate" ]; then
  run "$prefix/bin/prompthost-validate" "$plugin" ||
    fail "prompthost-validate $plugin exited with $?"
  ok "prompthost-validate passes"
else
  skip "prompthost-validate: the build has no prompthost-validate target yet (none installed in $prefix/bin)"
fi

# 5. The installed host finds the plugin through PROMPTHOST_PLUGIN_PATH.
usage="$("$prefix/bin/prompthost" --help 2>&1)" || fail "prompthost --help: $usage"
if grep -qE '^[[:space:]]+plugins[[:space:]]' <<<"$usage"; then
  listing="$(run env PROMPTHOST_PLUGIN_PATH="$example_build" "$prefix/bin/prompthost" plugins 2>&1)"
  code=$?
  echo "$listing"
  [ $code -eq 0 ] || fail "prompthost plugins exited with $code"
  grep -q 'minimal_prompt_tuning' <<<"$listing" ||
    fail "prompthost plugins (PROMPTHOST_PLUGIN_PATH=$example_build) does not list minimal_prompt_tuning"
  ok "prompthost plugins lists minimal_prompt_tuning"
else
  skip "prompthost plugins: the installed prompthost has no 'plugins' command yet (not in prompthost --help)"
fi

# 6. The installed host trains on its own copy of the bundled demo (share/prompthost/demo),
#    also after the prefix is moved: the run's recorded model path is inside the prefix.
moved="$work/moved-prefix"
rm -rf "$moved" && mv "$prefix" "$moved" || fail "moving $prefix to $moved"
[ -f "$moved/share/prompthost/demo/hf/config.json" ] || fail "the install has no share/prompthost/demo"
run env -u PROMPTHOST_DEMO_DIR "$moved/bin/prompthost" train --plugin prompt_tuning --max-steps 1 \
  --no-generate-eval -q --output "$work/demo-run" || fail "the installed prompthost train on the demo"
grep -qF "\"model\": \"$moved/share/prompthost/demo/hf\"" "$work/demo-run/trainer_state.json" ||
  fail "the installed prompthost did not train on its installed demo ($(grep '"model"' "$work/demo-run/trainer_state.json"))"
mv "$moved" "$prefix"
ok "the installed prompthost defaults to its installed demo, also from a moved prefix"

if [ ${#skipped[@]} -gt 0 ]; then
  echo "SKIPPED (${#skipped[@]} check(s) could not run; everything that ran passed):"
  printf '  %s\n' "${skipped[@]}"
  exit 77
fi
echo "all checks passed"
