#!/bin/sh
# Installs what building and testing lmrt needs on Debian 12 (run as root or via sudo).
# Skips apt entirely when everything is already there.
set -eu
packages="build-essential meson ninja-build pkg-config zlib1g-dev libcmocka-dev
clang llvm libclang-rt-14-dev abigail-tools valgrind python3 python3-numpy python3-pytest
python3-pip python3-setuptools cargo rustc bindgen"
missing=""
for p in $packages; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO=sudo
    $SUDO apt-get update -q
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends $missing
fi
