#!/bin/sh
# Runs prompthost-validate on every plugin in a folder (the build's plugins/), one after
# another; fails if any fails. With no plugin there, exits with SKIP_CODE (CTest's
# SKIP_RETURN_CODE) after saying why.
#   sh validate_all.sh VALIDATE DIR SKIP_CODE
validate=$1
dir=$2
skip_code=$3
found=0
failed=""
for plugin in "$dir"/*.so; do
  [ -f "$plugin" ] || continue
  found=$((found + 1))
  echo "=== $plugin"
  "$validate" "$plugin" || failed="$failed $(basename "$plugin")"
done
if [ "$found" -eq 0 ]; then
  echo "skipped: no plugin (*.so) in $dir yet; nothing to validate"
  exit "$skip_code"
fi
if [ -n "$failed" ]; then
  echo "$found plugins validated; failed:$failed"
  exit 1
fi
echo "$found plugins validated, all passed"
