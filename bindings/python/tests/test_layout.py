"""The exhaustive layout check: a C program compiled against include/lmrt.h
prints sizeof of every struct and offsetof/sizeof of every field the binding
declares; each must equal ctypes' numbers. Also checks that the binding
declares every struct of the header, in the header's field order."""
import ctypes
import os
import re
import shutil
import subprocess

import pytest

from lmrt import _lib, _structs as S

from conftest import SOURCE_ROOT

HEADER = os.path.join(SOURCE_ROOT, "include", "lmrt.h")


def _cc():
    for cc in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if cc and shutil.which(cc):
            return cc
    return None


@pytest.fixture(scope="module")
def c_layout(tmp_path_factory):
    cc = _cc()
    if not cc or not os.path.isfile(HEADER):
        pytest.skip("needs a C compiler and include/lmrt.h")
    lines = ["#include <stddef.h>", "#include <stdio.h>", "#include <lmrt.h>",
             "int main(void) {"]
    for t, (name, _, _) in S.STRUCTS.items():
        lines.append('printf("%s %%zu %%zu\\n", sizeof(%s), _Alignof(%s));' % (name, name, name))
        for field, _ in t._fields_:
            lines.append('printf("%s.%s %%zu %%zu\\n", offsetof(%s, %s), sizeof(((%s *)0)->%s));'
                         % (name, field, name, field, name, field))
    lines += ["return 0;", "}"]
    d = tmp_path_factory.mktemp("layout")
    src, exe = d / "layout.c", d / "layout"
    src.write_text("\n".join(lines) + "\n")
    subprocess.run([cc, "-std=c11", "-I", os.path.dirname(HEADER), str(src), "-o", str(exe)],
                   check=True)
    out = subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout
    return {k: tuple(int(x) for x in v) for k, *v in (line.split() for line in out.splitlines())}


@pytest.mark.parametrize("struct", list(S.STRUCTS), ids=lambda t: S.STRUCTS[t][0])
def test_every_field_matches_the_c_compiler(c_layout, struct):
    name = S.STRUCTS[struct][0]
    assert c_layout[name] == (ctypes.sizeof(struct), ctypes.alignment(struct)), name
    for field, _ in struct._fields_:
        d = getattr(struct, field)
        assert c_layout["%s.%s" % (name, field)] == (d.offset, d.size), (name, field)


def header_structs():
    """{struct name: [field names]} parsed from the public header."""
    with open(HEADER) as f:
        text = re.sub(r"/\*.*?\*/", "", f.read(), flags=re.S)
    out = {}
    for m in re.finditer(r"typedef struct (lmrt_\w+) \{(.*?)\} \1;", text, re.S):
        fields = []
        for decl in m.group(2).split(";"):
            decl = decl.strip()
            if not decl:
                continue
            fp = re.search(r"\(\s*\*\s*(\w+)\s*\)", decl)       # a function pointer
            fields.append(fp.group(1) if fp else
                          re.search(r"(\w+)\s*(\[[^\]]*\]\s*)*$", decl).group(1))
        out[m.group(1)] = fields
    return out


def test_binding_declares_every_header_struct_in_order():
    if not os.path.isfile(HEADER):
        pytest.skip("no include/lmrt.h")
    declared = {name: [f for f, _ in t._fields_] for t, (name, _, _) in S.STRUCTS.items()}
    assert header_structs() == declared


def test_binding_declares_every_header_function():
    if not os.path.isfile(HEADER):
        pytest.skip("no include/lmrt.h")
    with open(HEADER) as f:
        names = set(re.findall(r"LMRT_API\s+[^;(]*?\b(lmrt_\w+)\s*\(", f.read()))
    assert names == set(_lib.PROTOTYPES)
