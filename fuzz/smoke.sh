#!/bin/sh
# Runs every fuzz target for a few seconds on a scratch copy of its seed
# corpus and fails if any of them finds a crash, a leak, a timeout or an
# out-of-memory.
#
#   fuzz/smoke.sh BUILD_DIR [SECONDS]      (SECONDS defaults to 10)
#   fuzz/smoke.sh --targets                (lists the targets)
#
# BUILD_DIR is a clang + ASan build with -Dfuzz=enabled, already compiled
# (meson compile -C BUILD_DIR). A failing input is kept as
# BUILD_DIR/fuzz/<target>-crash-<sha1> and printed as hex.

set -u

targets="decode_compact decode_canonical parse_json path batch session hostile_history"
if [ "${1:-}" = "--targets" ]; then
  for t in $targets; do echo "$t"; done
  exit 0
fi
if [ $# -lt 1 ] || [ $# -gt 2 ]; then
  echo "usage: $0 BUILD_DIR [SECONDS]" >&2
  exit 2
fi
build=$1
seconds=${2:-10}
case $seconds in
  '' | *[!0-9]*) echo "$0: SECONDS must be a whole number" >&2; exit 2 ;;
esac
here=$(cd "$(dirname "$0")" && pwd)
scratch=$(mktemp -d "${TMPDIR:-/tmp}/edgesync-fuzz.XXXXXX") || exit 2
trap 'rm -rf "$scratch"' EXIT INT TERM

failed=0
for target in $targets; do
  exe=$build/fuzz/${target}_fuzz
  if [ ! -x "$exe" ]; then
    echo "FAIL $target: $exe is missing (configure with -Dfuzz=enabled and run meson compile)"
    failed=1
    continue
  fi
  corpus=$scratch/$target
  mkdir -p "$corpus"
  if [ -d "$here/corpus/$target" ]; then
    cp "$here/corpus/$target"/* "$corpus"/ 2>/dev/null
  fi
  log=$scratch/$target.log
  "$exe" -max_total_time="$seconds" -timeout=25 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$build/fuzz/$target-" "$corpus" >"$log" 2>&1
  rc=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1)
  if [ $rc -ne 0 ]; then
    failed=1
    echo "FAIL $target (exit $rc, ${runs:-?} runs, ${cov:-cov: ?})"
    tail -n 60 "$log"
    for artifact in $(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log"); do
      echo "input $artifact:"
      od -An -tx1 -v "$artifact" | tr -d ' \n' | fold -w 96
      echo
    done
  else
    echo "ok   $target: ${runs:-?} runs in ${seconds}s, ${cov:-cov: ?}"
  fi
done
exit $failed
