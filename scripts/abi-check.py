#!/usr/bin/env python3
"""abi-check.py - hold liblmrt to the ABI promise of doc/abi.md.

    abi-check.py BUILD_DIR            compare the built library with lib/abi/liblmrt.abi
    abi-check.py --update BUILD_DIR   rewrite lib/abi/liblmrt.abi (at a release)

abidiff reports every change; the promise allows exactly two kinds: new
functions, and new fields appended at the end of a size-versioned struct. Every
line of the report must be one of those (or the context lines around them);
anything else (a removed or changed function, a moved, resized or removed
field, a changed enum) fails the check.
"""
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DUMP = os.path.join(ROOT, "lib", "abi", "liblmrt.abi")
# The opaque handles' layouts are not part of the ABI (doc/abi.md).
SUPPRESSIONS = os.path.join(ROOT, "lib", "abi", "opaque-handles.suppr")

ALLOWED = [re.compile(p) for p in (
    r"^$",
    r"^Functions changes summary: 0 Removed, \d+ Changed( \(\d+ filtered out\))?, \d+ Added functions?$",
    r"^Variables changes summary: 0 Removed, 0 Changed, \d+ Added variables?$",
    r"^\d+ Added (functions?|variables?):$",
    r"^\s*\[A\] '.*'",
    r"^\d+ functions? with some indirect sub-type changes?:$",
    r"^\s*\[C\] 'function .*' has some indirect sub-type changes:$",
    r"^\s*parameter \d+ of type '.*' has sub-type changes:$",
    r"^\s*in (pointed to|unqualified underlying|referenced) type '.*':$",
    r"^\s*underlying type '.*' changed:$",
    r"^\s*type size changed from \d+ to \d+ \(in bits\)$",
    r"^\s*type size hasn't changed$",
    r"^\s*\d+ data member insertions?:$",
    r"^\s*'.*', at offset \d+ \(in bits\)$",
    r"^\s*(type|struct|typedef) '.*' changed, as reported earlier$",
)]


def dump(build):
    lib = os.path.join(build, "lib", "liblmrt.so")
    out = subprocess.run(["abidw", "--headers-dir", os.path.join(ROOT, "include"),
                          "--no-corpus-path", "--drop-undefined-syms", lib],
                         check=True, capture_output=True, text=True).stdout
    return out


def main():
    args = sys.argv[1:]
    update = args and args[0] == "--update"
    if update:
        args = args[1:]
    if len(args) != 1:
        sys.exit(__doc__)
    new_dump = dump(args[0])
    if update:
        os.makedirs(os.path.dirname(DUMP), exist_ok=True)
        with open(DUMP, "w") as f:
            f.write(new_dump)
        print("abi-check: wrote", os.path.relpath(DUMP, ROOT))
        return 0
    tmp = os.path.join(args[0], "liblmrt.current.abi")
    with open(tmp, "w") as f:
        f.write(new_dump)
    p = subprocess.run(["abidiff", "--no-show-locs", "--suppressions", SUPPRESSIONS, DUMP, tmp],
                       capture_output=True, text=True)
    report = p.stdout + p.stderr
    if p.returncode & ~(4 | 8):
        print(report)
        print("abi-check: abidiff failed to run (status %d)" % p.returncode)
        return 1
    bad = [line for line in report.splitlines() if not any(r.match(line) for r in ALLOWED)]
    if p.returncode & 8 or bad:
        print(report)
        print("abi-check: INCOMPATIBLE change against lib/abi/liblmrt.abi:")
        for line in bad:
            print("  ", line.strip())
        return 1
    added = "; ".join(l.strip() for l in report.splitlines() if re.match(r"^\s*\[A\]", l))
    print("abi-check: compatible with lib/abi/liblmrt.abi" + (" (added: %s)" % added if added else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
