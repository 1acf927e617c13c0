#!/usr/bin/env bash
# The ABI header guards its own stability:
#  1. plugin_abi.h as it is compiles cleanly as C11, C17, C++17 and C++20 with
#     -Wall -Wextra -pedantic -Werror (with every C/C++ compiler given or found on PATH);
#  2. for every released table (a struct that starts with `uint32_t struct_size;`), a copy
#     of the header with one field inserted before the table's last field must FAIL to
#     compile, stopped by the table's layout static_assert of the minor that added that
#     field ("NAME 1.0 ...", "NAME 1.1 ...") (as C11 and as C++17);
#  3. the same field appended at the end of every table (what a new minor version may do)
#     still compiles.
#
#   abi_offsets_test.sh HEADER WORK_DIR [C_COMPILER [CXX_COMPILER]]
#
# Exit 0: all held. 77 (CTest SKIP_RETURN_CODE): not an LP64 target, where the layout
# asserts are off. Anything else: a failure, explained on stderr.
set -uo pipefail

if [ $# -lt 2 ]; then
  sed -n '11p' "$0" | sed 's/^# *//' >&2
  exit 2
fi
header="$1"
work="$2"
cc="${3:-cc}"
cxx="${4:-c++}"
flags=(-Wall -Wextra -pedantic -Werror -fsyntax-only)
inserted="int32_t ph_abi_test_inserted;"

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

[ -f "$header" ] || fail "no header $header"
rm -rf "$work"
mkdir -p "$work" || fail "cannot create $work"

# A translation unit that includes the header and uses its macros.
cat >"$work/probe.c" <<'PROBE'
#include "prompthost_sdk/plugin_abi.h"
int ph_probe(const ph_method* m);
int ph_probe(const ph_method* m) {
  return PH_HAS(m, ph_method, get_extension) && PH_ABI_MAJOR == 1 ? PH_OK : PH_ERR_INTERNAL;
}
PROBE

# compile DIR LANG STD COMPILER: compiles the probe against DIR/prompthost_sdk/plugin_abi.h,
# output in $work/last.log.
compile() {
  "$4" -x "$2" -std="$3" "${flags[@]}" -I"$1" "$work/probe.c" >"$work/last.log" 2>&1
}

# A copy of the header under DIR/prompthost_sdk/.
place() {
  mkdir -p "$1/prompthost_sdk" && cp "$2" "$1/prompthost_sdk/plugin_abi.h"
}

predefined="$("$cc" -dM -E -x c /dev/null 2>&1)" || fail "$cc -dM -E: $predefined"
if ! grep -q '__LP64__' <<<"$predefined"; then
  echo "skipped: $cc does not target LP64; the header's 1.0 layout asserts are LP64-only"
  exit 77
fi

# --- 1. The header as it is, in every language standard, with every compiler at hand.
place "$work/orig" "$header" || fail "cannot copy $header"
c_compilers=("$cc")
cxx_compilers=("$cxx")
for extra in gcc clang; do command -v "$extra" >/dev/null && c_compilers+=("$extra"); done
for extra in g++ clang++; do command -v "$extra" >/dev/null && cxx_compilers+=("$extra"); done
checked=" "
for compiler in "${c_compilers[@]}" "${cxx_compilers[@]}"; do
  real="$(command -v "$compiler")" || fail "no compiler $compiler"
  real="$(readlink -f "$real")"
  case " ${c_compilers[*]} " in *" $compiler "*) lang=c stds="c11 c17" ;; *) lang=c++ stds="c++17 c++20" ;; esac
  case "$checked" in *" $lang:$real "*) continue ;; esac  # the same compiler under two names
  checked+="$lang:$real "
  for std in $stds; do
    compile "$work/orig" "$lang" "$std" "$compiler" ||
      { cat "$work/last.log" >&2; fail "plugin_abi.h does not compile cleanly: $compiler -std=$std ${flags[*]}"; }
    echo "ok: $compiler -std=$std ${flags[*]}"
  done
done

# --- 2. Find every table and the first line of its last field.
# Prints "NAME LINE_OF_LAST_FIELD LINE_OF_CLOSING_BRACE" per table.
tables="$(awk '
  # Drops comments (which may span lines) from the line, tracking state in `incomment`.
  function strip(s,   out, i) {
    out = ""
    while (length(s) > 0) {
      if (incomment) {
        i = index(s, "*/"); if (i == 0) return out
        s = substr(s, i + 2); incomment = 0
      } else {
        i = index(s, "/*"); if (i == 0) return out s
        out = out substr(s, 1, i - 1); s = substr(s, i + 2); incomment = 1
      }
    }
    return out
  }
  {
    code = strip($0)
    if (!inbody && code ~ /^(typedef )?struct [a-z0-9_]+ \{[ \t]*$/) {
      n = split(code, w, " "); name = (w[1] == "typedef") ? w[3] : w[2]
      inbody = 1; first = 1; open = 0; last = 0; next
    }
    if (!inbody) next
    if (code ~ /^\}/) {
      if (istable) print name, last, NR
      inbody = 0; istable = 0; next
    }
    if (code ~ /^[ \t]*$/) next
    if (first) { istable = (code ~ /^[ \t]*uint32_t struct_size;[ \t]*$/); first = 0 }
    if (!open) last = NR
    open = (code !~ /;[ \t]*$/)
  }' "$header")"
[ -n "$tables" ] || fail "found no table (struct starting with uint32_t struct_size) in $header"
echo "tables: $(echo "$tables" | awk '{print $1}' | tr '\n' ' ')"

# --- 3. A field inserted before the last field of any table must not compile.
while read -r name line _; do
  dir="$work/insert_$name"
  place "$dir" "$header" || fail "cannot copy $header"
  sed -i "${line}i\\  $inserted" "$dir/prompthost_sdk/plugin_abi.h"
  for lang_std in "c c11 $cc" "c++ c++17 $cxx"; do
    read -r lang std compiler <<<"$lang_std"
    if compile "$dir" "$lang" "$std" "$compiler"; then
      fail "$name: a field inserted before line $line ($(sed -n "$((line + 1))p" "$dir/prompthost_sdk/plugin_abi.h" | sed 's/^ *//')) still compiles as $std: its last field has no 1.0 layout static_assert"
    fi
    grep -qE "$name 1\.[0-9]+" "$work/last.log" || {
      cat "$work/last.log" >&2
      fail "$name: the insertion failed to compile as $std, but not through its layout assert (\"$name 1.N ...\")"
    }
  done
  echo "ok: $name: a field inserted before its last field fails to compile (C11 and C++17)"
done <<<"$tables"

# --- 4. The same field appended at the end of every table (a later minor) compiles.
dir="$work/append"
place "$dir" "$header" || fail "cannot copy $header"
for line in $(echo "$tables" | awk '{print $3}' | sort -rn); do
  sed -i "${line}i\\  $inserted" "$dir/prompthost_sdk/plugin_abi.h"
done
for lang_std in "c c11 $cc" "c++ c++17 $cxx"; do
  read -r lang std compiler <<<"$lang_std"
  compile "$dir" "$lang" "$std" "$compiler" ||
    { cat "$work/last.log" >&2; fail "a field appended at the end of every table does not compile as $std"; }
done
echo "ok: fields appended at the end of every table compile (C11 and C++17)"
echo "all checks passed"
