#!/bin/sh
# Installs what building and testing lmrt needs on Debian 12 (run as root or via sudo).
# Skips apt entirely when everything is already there.
set -eu
packages="build-essential meson ninja-build pkg-config zlib1g-dev libcmocka-dev
clang llvm libclang-rt-14-dev abigail-tools valgrind python3 python3-numpy python3-pytest
python3-pip python3-setuptools cargo rustc bindgen libjpeg62-turbo-dev"
# The aarch64 cross build (scripts/cross/aarch64-linux-gnu.ini) and qemu to run its
# tests. The :arm64 packages come through Debian's multiarch and bring libc6:arm64,
# whose loader the test binaries run on.
cross_packages="gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user
libcmocka-dev:arm64 zlib1g-dev:arm64"
missing=""
for p in $packages $cross_packages; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO=sudo
    case "$missing" in
    *:arm64*)
        dpkg --print-foreign-architectures | grep -qx arm64 || $SUDO dpkg --add-architecture arm64
        ;;
    esac
    $SUDO apt-get update -q
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends $missing
fi
