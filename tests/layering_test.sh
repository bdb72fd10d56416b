#!/usr/bin/env bash
# The layers may only depend downwards: crdt <- transport <- lib <- tools
# (DESIGN.md). Every layer sees the repository root on its include path, so
# this check is what makes an illegal include fail the suite.
set -u
root="${1:?usage: layering_test.sh SOURCE_ROOT}"
cd "$root" || exit 1
status=0
# check LAYER PATTERN WHY: fail on any include in LAYER matching PATTERN.
check() {
  local hits
  hits=$(grep -rnE --include='*.h' --include='*.cc' "^#include [<\"]($2)" "$1" 2>/dev/null)
  if [[ -n "$hits" ]]; then
    echo "layering violation ($3):"
    echo "$hits"
    status=1
  fi
}
check crdt 'transport/|lib/|tools/|edgesync/|lmdb\.h|sodium|kj/async|kj/thread|sys/socket|thread>|mutex>|fstream>|absl/synchronization' \
  "crdt/ is pure: no I/O, threads, LMDB, libsodium or upper layers"
check transport 'lib/|tools/|lmdb\.h' "transport/ may not use lib/ or LMDB"
check lib 'tools/' "lib/ may not use tools/"
check include/edgesync 'kj/|capnp/|lmdb\.h|sodium|crdt/|transport/|lib/' \
  "the public C++ API exposes no KJ, Cap'n Proto, LMDB, sodium or internal types"
exit $status
