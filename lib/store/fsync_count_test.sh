#!/bin/sh
# File: lib/store/fsync_count_test.sh
#
# Shows what each LmdbDurability costs in sync calls: runs 100 commits per
# mode under strace and checks the counts. Usage: fsync_count_test.sh
# <lmdb_env_helper>. Exit 77 (meson: skipped) without strace.
#
# On Linux LMDB 0.9.24 makes one fdatasync per commit in kDurable AND kFast
# (the data pages). The difference is the meta page: kDurable writes it with
# pwrite64 through a second descriptor opened O_DSYNC (a synchronous write,
# no sync call), kFast through the plain descriptor. So the script also
# counts the pwrite64 calls on the O_DSYNC descriptor. kNoSyncForTesting
# makes neither. The helper's OpenDb(MDB_CREATE) adds one commit.

set -eu

helper=$1
n=100
if ! command -v strace >/dev/null 2>&1; then
  echo "strace is not installed: skipping"
  exit 77
fi
if ! strace -o /dev/null true 2>/dev/null; then
  echo "strace cannot trace here (ptrace not permitted): skipping"
  exit 77
fi
# LeakSanitizer cannot run under ptrace (lib_lmdb_env_test leak-checks the
# library).
ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
export ASAN_OPTIONS
tmp=$(mktemp -d "${TMPDIR:-/tmp}/fsync_count.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# sync_calls <mode>: fsync + fdatasync + msync calls of <n> commits.
sync_calls() {
  strace -f -c -e trace=fsync,fdatasync,msync -o "$tmp/$1.summary" \
    "$helper" commits "$tmp/$1.syncs" "$1" "$n" >&2
  awk '$NF == "fsync" || $NF == "fdatasync" || $NF == "msync" { calls += $4 }
       END { print calls + 0 }' "$tmp/$1.summary"
}

# dsync_writes <mode>: pwrite64 calls on a descriptor of data.mdb opened
# with O_DSYNC, over <n> commits.
dsync_writes() {
  strace -f -e trace=openat,pwrite64 -o "$tmp/$1.trace" \
    "$helper" commits "$tmp/$1.writes" "$1" "$n" >&2
  fd=$(grep 'data\.mdb' "$tmp/$1.trace" | grep 'O_DSYNC' | sed -n 's/.*= \([0-9][0-9]*\)$/\1/p')
  if [ -z "$fd" ]; then
    echo 0
  else
    grep -c "pwrite64($fd," "$tmp/$1.trace" || true
  fi
}

durable_syncs=$(sync_calls durable)
fast_syncs=$(sync_calls fast)
nosync_syncs=$(sync_calls nosync)
durable_dsync=$(dsync_writes durable)
fast_dsync=$(dsync_writes fast)
nosync_dsync=$(dsync_writes nosync)

report() {
  echo "$n commits, $1: $2 fsync/fdatasync/msync calls, $3 O_DSYNC meta writes"
}
report "kDurable         " "$durable_syncs" "$durable_dsync"
report "kFast            " "$fast_syncs" "$fast_dsync"
report "kNoSyncForTesting" "$nosync_syncs" "$nosync_dsync"

status=0
check() {
  if ! eval "$1"; then
    echo "FAILED: $2 ($1)"
    status=1
  fi
}
check "[ $durable_syncs -ge $n ]" "kDurable syncs the data at every commit"
check "[ $durable_dsync -ge $n ]" "kDurable writes the meta page synchronously at every commit"
check "[ $fast_syncs -ge $n ]" "kFast syncs the data at every commit"
check "[ $fast_dsync -eq 0 ]" "kFast never writes the meta page synchronously"
check "[ $((fast_syncs + fast_dsync)) -lt $((durable_syncs + durable_dsync)) ]" \
  "kFast waits for the disk less often than kDurable"
check "[ $((nosync_syncs + nosync_dsync)) -eq 0 ]" "kNoSyncForTesting never waits for the disk"
exit $status
