#!/usr/bin/env bash
# docs/writing-a-plugin.md shows real code, and this keeps it real: every fenced block
# tagged ```cpp must appear verbatim in examples/minimal_prompt_tuning/minimal_prompt_tuning.cpp,
# every ```c block in sdk/include/prompthost_sdk/plugin_abi.h, and every ```cmake block in
# examples/minimal_prompt_tuning/CMakeLists.txt, and every ```cpt block (the chapter on ABI
# 1.2's features) in plugins/cpt/cpt.cpp. (Other blocks: ```sh, ```text, ...)
#
#   guide_in_sync.sh SOURCE_DIR
set -uo pipefail

src="${1:?usage: guide_in_sync.sh SOURCE_DIR}"
guide="$src/docs/writing-a-plugin.md"
declare -A quoted_from=(
  [cpp]="$src/examples/minimal_prompt_tuning/minimal_prompt_tuning.cpp"
  [c]="$src/sdk/include/prompthost_sdk/plugin_abi.h"
  [cmake]="$src/examples/minimal_prompt_tuning/CMakeLists.txt"
  [cpt]="$src/plugins/cpt/cpt.cpp")

[ -f "$guide" ] || { echo "FAIL: no $guide" >&2; exit 1; }
work="$(mktemp -d)" || exit 1
trap 'rm -rf "$work"' EXIT

# Each block to $work/<n>.<lang>, with its first line number in $work/<n>.line.
awk -v dir="$work" '
  !inblock && /^```[a-z]+[ \t]*$/ {
    lang = substr($0, 4); sub(/[ \t]+$/, "", lang); n++
    file = dir "/" n "." lang; printf "" > file; print NR > (dir "/" n ".line"); inblock = 1; next
  }
  inblock && /^```[ \t]*$/ { close(file); inblock = 0; next }
  inblock { print >> file }
  !inblock && /^```[ \t]*$/ { n++; file = dir "/" n ".none"; printf "" > file; inblock = 1; next }
' "$guide"

checked=0
failed=0
for block in "$work"/*.*; do
  lang="${block##*.}"
  [ "$lang" = line ] && continue
  source="${quoted_from[$lang]:-}"
  [ -n "$source" ] || continue
  line="$(cat "${block%.*}.line")"
  # $(...) drops the trailing newline of both, so a block may end mid-file.
  text="$(cat "$block")"
  haystack="$(cat "$source")"
  checked=$((checked + 1))
  if [[ "$haystack" != *"$text"* ]]; then
    echo "FAIL: the \`\`\`$lang block at $guide:$line is not in $source:" >&2
    sed 's/^/    /' "$block" >&2
    failed=$((failed + 1))
  fi
done
[ $checked -gt 0 ] || { echo "FAIL: no \`\`\`cpp, \`\`\`c or \`\`\`cmake block in $guide" >&2; exit 1; }
[ $failed -eq 0 ] || exit 1
echo "ok: $checked quoted blocks match their sources"
