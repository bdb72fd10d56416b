#!/usr/bin/env bash
# Builds and runs link_app.c with exactly the flags pkg-config gives for
# `edgesync` (the build tree's meson-uninstalled/edgesync-uninstalled.pc,
# which matches the installed edgesync.pc), as docs/c-api.md describes.
# usage: link_test.sh BUILD_ROOT LINK_APP.c CC [CC ARGS...]
set -eu
build="${1:?usage: link_test.sh BUILD_ROOT LINK_APP.c CC...}"
src="${2:?}"
shift 2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export PKG_CONFIG_PATH="$build/meson-uninstalled"
cflags=$(pkg-config --cflags edgesync)
libs=$(pkg-config --libs edgesync)
libdir=$(pkg-config --libs-only-L edgesync | sed 's/^ *-L//; s/ .*//')
# shellcheck disable=SC2086 # the flags are words
"$@" -std=c99 -Wall -Wextra -pedantic -Werror $cflags "$src" $libs -Wl,-rpath,"$libdir" \
  -o "$tmp/link_app"
"$tmp/link_app" "$tmp/replica"
echo "ok: built with: $cflags $libs"
