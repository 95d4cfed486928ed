#!/bin/sh
# check_install.sh BUILD_DIR - installs the build into a scratch prefix and checks
# what a user of the installed library sees: the header compiles as C99
# -pedantic and as C++, a consumer links through pkg-config and runs, the
# shared library exports only lmrt_* symbols and has the right SONAME.
set -eu
build=$(cd "$1" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT

meson install -C "$build" --no-rebuild --quiet --destdir "$stage" >/dev/null
prefix=$(meson introspect "$build" --buildoptions | python3 -c \
    'import json,sys; print([o["value"] for o in json.load(sys.stdin) if o["name"]=="prefix"][0])')
pcdir=$(dirname "$(find "$stage" -name lmrt.pc | head -n 1)")
export PKG_CONFIG_PATH="$pcdir" PKG_CONFIG_SYSROOT_DIR="$stage"
libdir="$stage$(pkg-config --variable=libdir lmrt | sed "s|^$stage||")"

for f in liblmrt.so liblmrt.so.0 liblmrt.a lmrt.pc; do
    find "$stage" -name "$f" | grep -q . || { echo "not installed: $f"; exit 1; }
done
test -f "$stage$prefix/include/lmrt.h" || { echo "not installed: include/lmrt.h"; exit 1; }

soname=$(readelf -d "$libdir/liblmrt.so" | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')
[ "$soname" = "liblmrt.so.0" ] || { echo "SONAME is '$soname', want liblmrt.so.0"; exit 1; }

bad=$(nm -D --defined-only "$libdir/liblmrt.so" | awk '{print $NF}' | grep -v '^lmrt_' || true)
[ -z "$bad" ] || { echo "exported symbols outside lmrt_*:"; echo "$bad"; exit 1; }
echo "exports: $(nm -D --defined-only "$libdir/liblmrt.so" | wc -l) symbols, all lmrt_*"

cc=${CC:-cc}
# shellcheck disable=SC2046
$cc -std=c99 -pedantic -Wall -Wextra -Werror "$here/consumer.c" -o "$stage/consumer" \
    $(pkg-config --cflags --libs lmrt)
LD_LIBRARY_PATH="$libdir" "$stage/consumer"

cxx=${CXX:-c++}
if command -v "$cxx" >/dev/null 2>&1; then
    # shellcheck disable=SC2046
    $cxx -std=c++11 -pedantic -Wall -Wextra -Werror "$here/consumer.cpp" -o "$stage/consumer_cxx" \
        $(pkg-config --cflags --libs lmrt)
    LD_LIBRARY_PATH="$libdir" "$stage/consumer_cxx"
fi

# Static linking through pkg-config --static.
# shellcheck disable=SC2046
$cc -std=c99 -pedantic -Wall -Wextra -Werror "$here/consumer.c" -o "$stage/consumer_static" \
    $(pkg-config --cflags lmrt) "$libdir/liblmrt.a" $(pkg-config --static --libs-only-other --libs-only-l lmrt | sed 's/-llmrt//') -lm -lpthread
"$stage/consumer_static"
echo "install check passed"
