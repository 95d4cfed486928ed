"""_lib.py - finds and opens liblmrt, checks its ABI version and struct layouts,
and declares the C prototypes. Everything else in the package calls C through
lib() and check(); nothing here knows about models or sessions.

Where the library is looked for, in order (the first hit is used):
  1. $LMRT_LIBRARY: a file, or a directory holding liblmrt.so.0 / liblmrt.so.
     When set, nothing else is tried.
  2. $LMRT_BUILD_DIR: a meson build directory (its lib/liblmrt.so.0).
  3. A meson build directory beside the source tree: walking up from this
     package, the first directory with build*/lib/liblmrt.so.0 (the newest of
     those when several build directories exist).
  4. The system loader: ctypes.util.find_library("lmrt"), then "liblmrt.so.0".
"""
import ctypes
import ctypes.util
import glob
import os
import threading

from . import _structs as S
from .errors import AbiError, LibraryNotFoundError, error_for_status

# The LMRT_ABI_VERSION of the include/lmrt.h this binding was written for.
ABI_VERSION = 0

_SONAMES = ("liblmrt.so.0", "liblmrt.so")

_state = None            # the loaded library (a ctypes.CDLL), once loaded
_state_lock = threading.Lock()
struct_sizes = {}        # {C struct name: sizeof in the loaded library}, as far as probed
_model_structs_checked = False

from ctypes import c_bool, c_char_p, c_float, c_int32, c_int64, c_size_t, c_uint32, c_void_p  # noqa
P = ctypes.POINTER
status = c_int32
model_p = c_void_p
ctx_p = c_void_p
session_p = c_void_p
str_array = P(c_char_p)

# name: (restype, argtypes). The whole public API of lmrt.h at LMRT_ABI_VERSION 0.
PROTOTYPES = {
    "lmrt_version": (c_char_p, []),
    "lmrt_abi_version": (c_int32, []),
    "lmrt_status_str": (c_char_p, [status]),
    "lmrt_last_error": (c_char_p, []),
    "lmrt_set_log_callback": (None, [S.LOG_FN, c_void_p, c_int32]),
    "lmrt_free": (None, [c_void_p]),
    "lmrt_device_info_init": (None, [P(S.DeviceInfo), c_size_t]),
    "lmrt_device_count": (status, [c_int32, P(c_int32)]),
    "lmrt_device_get_info": (status, [c_int32, c_int32, P(S.DeviceInfo)]),
    "lmrt_model_params_init": (None, [P(S.ModelParams), c_size_t]),
    "lmrt_model_load": (status, [c_char_p, P(S.ModelParams), P(model_p)]),
    "lmrt_model_load_memory": (status, [c_void_p, c_size_t, P(S.ModelParams), P(model_p)]),
    "lmrt_model_load_builtin": (status, [P(S.ModelParams), P(model_p)]),
    "lmrt_model_free": (None, [model_p]),
    "lmrt_model_info_init": (None, [P(S.ModelInfo), c_size_t]),
    "lmrt_model_get_info": (status, [model_p, P(S.ModelInfo)]),
    "lmrt_model_meta_key": (status, [model_p, c_int64, P(c_char_p)]),
    "lmrt_model_meta_type": (status, [model_p, c_char_p, P(c_int32), P(c_int32), P(c_int64)]),
    "lmrt_model_meta_int": (status, [model_p, c_char_p, P(c_int64)]),
    "lmrt_model_meta_float": (status, [model_p, c_char_p, P(ctypes.c_double)]),
    "lmrt_model_meta_string": (status, [model_p, c_char_p, P(c_char_p)]),
    "lmrt_model_meta_array_int": (status, [model_p, c_char_p, c_int64, P(c_int64)]),
    "lmrt_model_meta_array_float": (status, [model_p, c_char_p, c_int64, P(ctypes.c_double)]),
    "lmrt_model_meta_array_string": (status, [model_p, c_char_p, c_int64, P(c_void_p),
                                              P(c_size_t)]),
    "lmrt_model_meta_format": (status, [model_p, c_char_p, c_int64, c_void_p, c_size_t,
                                        P(c_size_t)]),
    "lmrt_tensor_info_init": (None, [P(S.TensorInfo), c_size_t]),
    "lmrt_model_tensor_info": (status, [model_p, c_int64, P(S.TensorInfo)]),
    "lmrt_tokenize": (status, [model_p, c_char_p, c_size_t, c_uint32, P(c_int32), c_size_t,
                               P(c_size_t)]),
    "lmrt_detokenize": (status, [model_p, P(c_int32), c_size_t, c_uint32, c_void_p, c_size_t,
                                 P(c_size_t)]),
    "lmrt_model_special_token": (status, [model_p, c_int32, P(c_int32)]),
    "lmrt_model_token_is_eog": (c_bool, [model_p, c_int32]),
    "lmrt_chat_format": (status, [model_p, str_array, str_array, c_size_t, c_bool, c_void_p,
                                  c_size_t, P(c_size_t)]),
    "lmrt_context_params_init": (None, [P(S.ContextParams), c_size_t]),
    "lmrt_context_create": (status, [model_p, P(S.ContextParams), P(ctx_p)]),
    "lmrt_context_free": (None, [ctx_p]),
    "lmrt_capabilities_init": (None, [P(S.Capabilities), c_size_t]),
    "lmrt_query_capabilities": (status, [model_p, c_char_p, P(S.Capabilities)]),
    "lmrt_context_capabilities": (status, [ctx_p, P(S.Capabilities)]),
    "lmrt_context_info_init": (None, [P(S.ContextInfo), c_size_t]),
    "lmrt_context_get_info": (status, [ctx_p, P(S.ContextInfo)]),
    "lmrt_session_params_init": (None, [P(S.SessionParams), c_size_t]),
    "lmrt_session_create": (status, [ctx_p, P(S.SessionParams), P(session_p)]),
    "lmrt_session_free": (None, [session_p]),
    "lmrt_session_fork": (status, [session_p, P(session_p)]),
    "lmrt_session_reset": (status, [session_p]),
    "lmrt_session_feed_text": (status, [session_p, c_char_p, c_uint32]),
    "lmrt_session_feed_tokens": (status, [session_p, P(c_int32), c_size_t]),
    "lmrt_session_feed_chat": (status, [session_p, str_array, str_array, c_size_t, c_bool]),
    "lmrt_session_feed_image_file": (status, [session_p, c_char_p]),
    "lmrt_session_feed_image_encoded": (status, [session_p, c_void_p, c_size_t]),
    "lmrt_session_feed_image_rgb": (status, [session_p, c_void_p, c_int32, c_int32, c_size_t]),
    "lmrt_session_feed_audio_file": (status, [session_p, c_char_p]),
    "lmrt_session_feed_audio_encoded": (status, [session_p, c_void_p, c_size_t]),
    "lmrt_session_feed_audio_pcm": (status, [session_p, P(c_float), c_size_t, c_int32]),
    "lmrt_session_logits": (status, [session_p, P(P(c_float)), P(c_int64), P(c_int32)]),
    "lmrt_session_n_tokens": (status, [session_p, P(c_int64)]),
    "lmrt_sampler_params_init": (None, [P(S.SamplerParams), c_size_t]),
    "lmrt_session_set_sampler": (status, [session_p, P(S.SamplerParams)]),
    "lmrt_session_next_token": (status, [session_p, P(c_int32), c_void_p, c_size_t,
                                         P(c_size_t)]),
    "lmrt_generate_params_init": (None, [P(S.GenerateParams), c_size_t]),
    "lmrt_session_generate": (status, [session_p, P(S.GenerateParams), P(c_int32)]),
    "lmrt_session_save": (status, [session_p, P(c_void_p), P(c_size_t)]),
    "lmrt_session_restore": (status, [ctx_p, c_void_p, c_size_t, P(session_p)]),
}


def _candidates():
    """[(description, path or None)] in search order; a None path is a loader name."""
    env = os.environ.get("LMRT_LIBRARY")
    if env:
        if os.path.isdir(env):
            return [("$LMRT_LIBRARY", os.path.join(env, n)) for n in _SONAMES]
        return [("$LMRT_LIBRARY", env)]
    out = []
    build = os.environ.get("LMRT_BUILD_DIR")
    if build:
        out += [("$LMRT_BUILD_DIR", os.path.join(build, "lib", n)) for n in _SONAMES]
    here = os.path.dirname(os.path.abspath(__file__))
    d = here
    while True:
        found = [p for p in glob.glob(os.path.join(d, "build*", "lib", "liblmrt.so.0"))
                 if os.path.isfile(p)]
        if found:
            found.sort(key=lambda p: os.path.getmtime(p), reverse=True)
            out += [("meson build directory", p) for p in found]
            break
        parent = os.path.dirname(d)
        if parent == d:
            out.append(("meson build directory", None))  # for the message only
            break
        d = parent
    name = ctypes.util.find_library("lmrt")
    if name:
        out.append(("ctypes.util.find_library('lmrt')", name))
    out.append(("system loader", "liblmrt.so.0"))
    return out


def _open(candidates):
    tried = []
    for where, path in candidates:
        if path is None:
            tried.append("%s: none found above %s" % (where, os.path.dirname(
                os.path.dirname(os.path.abspath(__file__)))))
            continue
        if os.sep in path and not os.path.exists(path):
            tried.append("%s: %s (no such file)" % (where, path))
            continue
        try:
            return ctypes.CDLL(path), path
        except OSError as e:
            tried.append("%s: %s (%s)" % (where, path, e))
    raise LibraryNotFoundError(
        "liblmrt not found; looked in:\n  " + "\n  ".join(tried) +
        "\nSet LMRT_LIBRARY to the library file, or LMRT_BUILD_DIR to a meson build directory.",
        tried)


def _declare(cdll, path):
    missing = []
    for name, (restype, argtypes) in PROTOTYPES.items():
        try:
            fn = getattr(cdll, name)
        except AttributeError:
            missing.append(name)
            continue
        fn.restype = restype
        fn.argtypes = argtypes
    if missing:
        raise AbiError("%s lacks %d function(s) this binding needs: %s"
                       % (path, len(missing), ", ".join(missing)))


def load(path=None):
    """Opens liblmrt (once per process) and checks it; returns the ctypes.CDLL.
    `path` overrides the search. Raises LibraryNotFoundError, AbiError."""
    global _state
    with _state_lock:
        if _state is not None and path is None:
            return _state
        candidates = [("load(path)", os.fspath(path))] if path is not None else _candidates()
        cdll, found = _open(candidates)
        try:
            abi = cdll.lmrt_abi_version
        except AttributeError:
            raise AbiError("%s has no lmrt_abi_version(): not an lmrt library" % found) from None
        abi.restype, abi.argtypes = c_int32, []
        version = abi()
        if version != ABI_VERSION:
            raise AbiError("%s has ABI version %d, but this binding was written for ABI "
                           "version %d (include/lmrt.h LMRT_ABI_VERSION); use the binding "
                           "that matches the library" % (found, version, ABI_VERSION))
        _declare(cdll, found)
        sizes = S.check_layouts(cdll)
        cdll._lmrt_path = found
        struct_sizes.clear()
        struct_sizes.update(sizes)
        _state = cdll
        return cdll


def lib():
    return _state if _state is not None else load()


def check_model_structs(model_handle):
    """The layout checks that need a model; run on the first model loaded."""
    global _model_structs_checked
    if _model_structs_checked:
        return
    struct_sizes.update(S.check_model_structs(lib(), model_handle))
    _model_structs_checked = True


def last_error():
    msg = lib().lmrt_last_error()
    return msg.decode("utf-8", "replace") if msg else ""


def check(st):
    """Raises the lmrt.Error subclass for a failed status; returns st when 0."""
    if st != 0:
        raise error_for_status(st, last_error())
    return st
