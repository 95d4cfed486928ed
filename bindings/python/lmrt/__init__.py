"""lmrt - Python binding of lmrt, the embeddable runtime for Llama-3-family models.

Pure ctypes: no compiled extension, no third-party dependency. liblmrt is
found on first use (see lmrt._lib for where it looks; LMRT_LIBRARY overrides).

    import lmrt
    with lmrt.Model() as m:                  # no path: the built-in default model
        s = m.session(region="US")
        print("".join(s.generate("Once upon a time", max_tokens=64, temperature=0)))
"""
import ctypes as _ctypes

from . import _lib
from .errors import (AbiError, Aborted, BackendError, BufferTooSmall, ContextFull, Error,
                     FormatError, InternalError, InvalidArgument, InvalidState, IOError,
                     LayoutError, LibraryNotFoundError, Mismatch, NotFound, NotLicensed,
                     OutOfMemory, Unsupported)
from .model import (Capabilities, DeviceInfo, Metadata, MetadataArray, Model, ModelInfo,
                    RuntimeInfo, TensorInfo, devices)
from .session import Context, Generation, Session, Token

__version__ = "0.1.0"
ABI_VERSION = _lib.ABI_VERSION

LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG = 0, 1, 2, 3

# lmrt.IOError is deliberately not in __all__: `from lmrt import *` must not
# shadow the builtin IOError. Use it as lmrt.IOError (it is also an OSError).
__all__ = [
    "Model", "Context", "Session", "Generation", "Token", "ModelInfo", "TensorInfo",
    "Capabilities", "RuntimeInfo", "DeviceInfo", "Metadata", "MetadataArray", "devices",
    "load_library", "library_path", "library_version", "abi_version", "set_log_callback",
    "Error", "LibraryNotFoundError", "AbiError", "LayoutError", "InvalidArgument",
    "OutOfMemory", "FormatError", "Unsupported", "NotFound", "NotLicensed",
    "ContextFull", "Aborted", "BufferTooSmall", "Mismatch", "BackendError", "InvalidState",
    "InternalError", "ABI_VERSION", "LOG_ERROR", "LOG_WARN", "LOG_INFO", "LOG_DEBUG",
]


def load_library(path=None):
    """Loads (once) and checks liblmrt; `path` skips the search. Returns its path.
    Raises LibraryNotFoundError or AbiError. Other calls do this on first use."""
    return _lib.load(path)._lmrt_path


def library_path():
    """The file of the loaded liblmrt."""
    return _lib.lib()._lmrt_path


def library_version():
    """lmrt_version() of the loaded library, e.g. "0.1.0"."""
    return _lib.lib().lmrt_version().decode()


def abi_version():
    """lmrt_abi_version() of the loaded library."""
    return _lib.lib().lmrt_abi_version()


_log_keepalive = None


def set_log_callback(fn, max_level=LOG_WARN):
    """Routes lmrt's log messages at max_level or more severe to fn(level, message);
    None silences them (the default). Process-wide; fn may be called from any
    thread inside an lmrt call, and its exceptions are printed, not raised."""
    global _log_keepalive
    lib = _lib.lib()
    if fn is None:
        lib.lmrt_set_log_callback(_ctypes.cast(None, _lib.S.LOG_FN), None, max_level)
        _log_keepalive = None
        return

    def trampoline(user, level, message):
        try:
            fn(level, message.decode("utf-8", "replace") if message else "")
        except Exception:  # never unwind into C
            import traceback
            traceback.print_exc()

    cb = _lib.S.LOG_FN(trampoline)
    lib.lmrt_set_log_callback(cb, None, max_level)
    # The old callback may still be running on another thread: keep it alive too.
    _log_keepalive = (cb, _log_keepalive[0] if _log_keepalive else None)
