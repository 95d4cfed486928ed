"""Finding and checking the library: the search order, a missing library, a
library of another ABI, and the struct-layout checks made at load."""
import ctypes
import ctypes.util
import os
import subprocess
import sys

import pytest

import lmrt
from lmrt import _lib, _structs as S

from conftest import PACKAGE_ROOT


def run_python(code, **env):
    e = dict(os.environ)
    e.pop("LMRT_LIBRARY", None)
    e.pop("LMRT_BUILD_DIR", None)
    e.update(env)
    e["PYTHONPATH"] = PACKAGE_ROOT + os.pathsep + e.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=e, timeout=60)


CATCH = """
import lmrt
try:
    lmrt.Model()
except lmrt.%s as e:
    assert isinstance(e, lmrt.Error), type(e).__mro__
    print("caught:", e)
else:
    print("no error")
"""


def test_missing_library_is_library_not_found_in_a_subprocess():
    p = run_python(CATCH % "LibraryNotFoundError", LMRT_LIBRARY="/nonexistent")
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("caught:"), p.stdout
    assert "/nonexistent" in p.stdout and "LMRT_LIBRARY" in p.stdout


def test_import_works_without_a_library():
    p = run_python("import lmrt; print(lmrt.__version__, lmrt.ABI_VERSION)",
                   LMRT_LIBRARY="/nonexistent")
    assert p.returncode == 0 and p.stdout.split() == ["0.1.0", "0"], p.stderr


def test_a_library_that_is_not_lmrt_is_an_abi_error():
    libz = ctypes.util.find_library("z")
    if not libz:
        pytest.skip("no libz to stand in for a foreign library")
    p = run_python(CATCH % "AbiError", LMRT_LIBRARY=libz)
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("caught:") and "lmrt_abi_version" in p.stdout, p.stdout


def test_build_dir_search_finds_the_library():
    lib_path = os.path.realpath(lmrt.library_path())
    build = os.path.dirname(os.path.dirname(lib_path))
    p = run_python("import lmrt; print(lmrt.load_library())", LMRT_BUILD_DIR=build)
    assert p.returncode == 0, p.stderr
    assert os.path.realpath(p.stdout.strip()) == lib_path


def test_abi_mismatch_is_an_abi_error(monkeypatch):
    monkeypatch.setattr(_lib, "ABI_VERSION", 99)
    monkeypatch.setattr(_lib, "_state", None)
    with pytest.raises(lmrt.AbiError) as e:
        lmrt.Model()
    assert "ABI version 0" in e.value.message and "version 99" in e.value.message
    assert isinstance(e.value, lmrt.Error)


def test_missing_function_is_an_abi_error(monkeypatch):
    protos = dict(_lib.PROTOTYPES)
    protos["lmrt_session_teleport"] = (None, [])
    monkeypatch.setattr(_lib, "PROTOTYPES", protos)
    monkeypatch.setattr(_lib, "_state", None)
    with pytest.raises(lmrt.AbiError) as e:
        lmrt.load_library()
    assert "lmrt_session_teleport" in e.value.message


def test_library_struct_sizes_equal_the_declared_ones(model):
    declared = {name: ctypes.sizeof(t) for t, (name, _, _) in S.STRUCTS.items()}
    assert _lib.struct_sizes, "the probes found nothing"
    for name, size in _lib.struct_sizes.items():
        assert size == declared[name], name
    assert set(_lib.struct_sizes) == {"lmrt_device_info", "lmrt_model_info",
                                      "lmrt_tensor_info", "lmrt_capabilities"}


class SwappedSampler(ctypes.Structure):
    """lmrt_sampler_params with temperature and top_k swapped: the same size."""
    _fields_ = [(n, t) for n, t in S.SamplerParams._fields_]
    _fields_[1], _fields_[2] = _fields_[2], _fields_[1]


class ShortDeviceInfo(ctypes.Structure):
    _fields_ = S.DeviceInfo._fields_[:3]


class LongModelInfo(ctypes.Structure):
    _fields_ = S.ModelInfo._fields_ + [("from_the_future", ctypes.c_uint64)]


def test_layout_checks_catch_wrong_declarations(monkeypatch, model):
    lib = _lib.lib()
    for t in S.STRUCTS:
        S.check_init(t, lib)                           # the real ones pass
    monkeypatch.setitem(S.STRUCTS, SwappedSampler, S.STRUCTS[S.SamplerParams])
    with pytest.raises(lmrt.LayoutError) as e:
        S.check_init(SwappedSampler, lib)
    assert "lmrt_sampler_params" in e.value.message
    # A declaration longer than the library's struct: the probe sees the short fill.
    monkeypatch.setitem(S.STRUCTS, LongModelInfo, S.STRUCTS[S.ModelInfo])
    monkeypatch.setitem(S.STRUCTS, ShortDeviceInfo, S.STRUCTS[S.DeviceInfo])
    monkeypatch.setattr(lib.lmrt_model_get_info, "argtypes", None)
    monkeypatch.setattr(lib.lmrt_device_get_info, "argtypes", None)
    with pytest.raises(lmrt.LayoutError) as e:
        S.probe_out(LongModelInfo, lib,
                    lambda p: lib.lmrt_model_get_info(ctypes.c_void_p(model._h), p))
    assert "fills %d bytes" % ctypes.sizeof(S.ModelInfo) in e.value.message
    # A declaration shorter than the library's (an older binding): fine, and the
    # probe still reports the library's full size.
    _, size = S.probe_out(ShortDeviceInfo, lib, lambda p: lib.lmrt_device_get_info(1, 0, p))
    assert size == ctypes.sizeof(S.DeviceInfo)


def test_check_layouts_pass_on_the_loaded_library():
    sizes = S.check_layouts(_lib.lib())
    assert sizes["lmrt_device_info"] == ctypes.sizeof(S.DeviceInfo)
