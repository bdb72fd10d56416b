#!/usr/bin/env bash
# The README's two commands:
#   tools/setup.sh demo   install what is missing, build, run the demo
#   tools/setup.sh test   install what is missing, build, run the test suite
# Builds in ./build (created on first use, reused after).
set -euo pipefail
cd "$(dirname "$0")/.."

mode="${1:-}"
if [[ "$mode" != "demo" && "$mode" != "test" ]]; then
  echo "usage: tools/setup.sh demo|test" >&2
  exit 2
fi

tools/install-deps.sh
if [[ ! -f build/build.ninja ]]; then
  meson setup build
fi
meson compile -C build

case "$mode" in
  demo) build/tools/edgesync demo ;;
  test) meson test -C build --print-errorlogs ;;
esac
