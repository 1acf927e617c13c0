#!/bin/bash
# isa_symbols: the objects of engine/isa/, built once per x86-64 level, must define only
# symbols of their own namespace ph::isa_vN, and no weak or unique ones. A weak symbol
# (an inline function or template from a C++ header, emitted in every level's objects
# under one name) lets the linker keep any level's copy, e.g. the AVX-512 one on a
# machine without AVX-512 (the ODR trap in models/engine/isa/kernel_bodies.h).
#
# Local symbols (lower-case types other than w/v/u) cannot be linked to from another
# object, so only global ones must be in ph::isa_vN: the sanitizer build's own locals
# (asan.module_ctor, __unnamed_N, ...) and the compiler's .L labels are not ours. The one
# weak kind allowed is the typeinfo of a function type, which -fsanitize=function emits:
# data, the same at every level.
#
# usage: check_isa_symbols.sh NM LEVEL=OBJECT[:OBJECT...] ...   (LEVEL: v2, v3, v4)
set -u
nm=$1
shift
failures=0
objects_seen=0
for set in "$@"; do
  level=${set%%=*}
  IFS=: read -r -a objects <<< "${set#*=}"
  for object in "${objects[@]}"; do
    objects_seen=$((objects_seen + 1))
    if ! listing=$("$nm" -C --defined-only "$object"); then
      echo "FAIL: $nm could not read $object"
      failures=$((failures + 1))
      continue
    fi
    while read -r _ type name; do
      [ -z "$name" ] && continue
      case "$type" in
        W | w | V | v | u)
          if [[ "$type" == V && "$name" =~ ^typeinfo\ (name\ )?for\ [^\ ]+\ \(.*\)$ ]]; then
            continue
          fi
          echo "FAIL: $object ($level): weak or unique symbol ($type) $name"
          failures=$((failures + 1))
          continue
          ;;
        [a-z]) continue ;;  # local
      esac
      case "$name" in
        "ph::isa_$level::"*) ;;
        *)
          echo "FAIL: $object ($level): symbol outside ph::isa_$level ($type) $name"
          failures=$((failures + 1))
          ;;
      esac
    done <<< "$listing"
  done
done
if [ "$objects_seen" -lt 3 ]; then
  echo "FAIL: expected the objects of three levels, got $objects_seen objects"
  exit 1
fi
echo "$objects_seen objects checked, $failures bad symbols"
[ "$failures" -eq 0 ]
