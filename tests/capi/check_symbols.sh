#!/usr/bin/env bash
# The ABI check: libedgesync.so exports exactly the functions listed in
# symbols.txt, and include/edgesync.h declares exactly those; the header
# includes nothing but <stddef.h> and <stdint.h>, and every macro and type
# it defines carries the EDGESYNC_/edgesync_ prefix.
# usage: check_symbols.sh LIBEDGESYNC.so symbols.txt edgesync.h
set -u
lib="${1:?usage: check_symbols.sh LIB SYMBOLS HEADER}"
list="${2:?}"
header="${3:?}"
status=0
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT

nm -D --defined-only "$lib" | awk '{print $NF}' | sed 's/@.*//' | sort -u > "$tmp/exported"
sort -u "$list" > "$tmp/listed"
sed -nE 's/^EDGESYNC_API[^(]*[ *](edgesync_[a-z0-9_]+)\(.*/\1/p' "$header" | sort -u > "$tmp/declared"

if ! diff -u "$tmp/listed" "$tmp/exported" > "$tmp/d1"; then
  echo "exported symbols of $lib differ from symbols.txt (- listed, + exported):"
  cat "$tmp/d1"
  status=1
fi
if ! diff -u "$tmp/listed" "$tmp/declared" > "$tmp/d2"; then
  echo "functions declared in edgesync.h differ from symbols.txt (- listed, + declared):"
  cat "$tmp/d2"
  status=1
fi
includes=$(grep -E '^[[:space:]]*#[[:space:]]*include' "$header" | sed -E 's/[[:space:]]+//g' | sort -u | tr '\n' ' ')
if [[ "$includes" != "#include<stddef.h> #include<stdint.h> " ]]; then
  echo "edgesync.h may include only <stddef.h> and <stdint.h>; it includes: $includes"
  status=1
fi
bad_macros=$(sed -nE 's/^[[:space:]]*#[[:space:]]*define[[:space:]]+([A-Za-z_0-9]+).*/\1/p' "$header" | grep -v '^EDGESYNC_')
if [[ -n "$bad_macros" ]]; then
  echo "unprefixed macros in edgesync.h: $bad_macros"
  status=1
fi
bad_types=$(sed -nE 's/^typedef[[:space:]].*[[:space:]*]([A-Za-z_0-9]+);/\1/p' "$header" | grep -v '^edgesync_')
if [[ -n "$bad_types" ]]; then
  echo "unprefixed types in edgesync.h: $bad_types"
  status=1
fi
count=$(wc -l < "$tmp/exported")
[[ $status -eq 0 ]] && echo "ok: $count symbols exported, all declared and listed"
exit $status
