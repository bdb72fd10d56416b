#!/usr/bin/env bash
# Installs the Debian 12 packages edgesync builds and tests with, if any are
# missing. Run as root. With --update, always refreshes the package lists
# first (CI does); otherwise only when something must be installed.
set -euo pipefail

packages=(
  g++ pkg-config meson ninja-build python3
  capnproto libcapnp-dev liblmdb-dev lmdb-utils libsodium-dev libabsl-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  nlohmann-json3-dev libzstd-dev libcli11-dev
  clang-14 libclang-rt-14-dev strace faketime
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [[ "${1:-}" == "--update" || ${#missing[@]} -gt 0 ]]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
fi
if [[ ${#missing[@]} -gt 0 ]]; then
  echo "installing: ${missing[*]}"
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
