"""_handle.py - what Model, Context and Session share: owning one C handle,
close() and context-manager support, a closed flag checked before every call,
and argument conversion (text to UTF-8 bytes, token ids to int32 arrays).
"""
import ctypes
import operator
import os
import threading

from . import _lib
from .errors import InvalidArgument, InvalidState

INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1


class Handle:
    """Owns one lmrt handle. Subclasses set _free_name (the C free function)."""

    _free_name = None
    _kind = "handle"

    def __init__(self):
        self._h = None
        self._lock = threading.RLock()  # one C call on this handle at a time

    def _set(self, handle):
        self._h = handle

    @property
    def closed(self):
        return self._h is None

    def _handle(self):
        """The C pointer, or InvalidState when closed (never a call on NULL)."""
        h = self._h
        if h is None:
            raise InvalidState("%s is closed" % self._kind)
        return h

    def _call(self, name, *args):
        """lib.name(handle, *args) under this handle's lock, status checked: a
        concurrent close() waits for the call, and a closed handle never reaches C."""
        with self._lock:
            return _lib.check(getattr(_lib.lib(), name)(self._handle(), *args))

    def _call_raw(self, name, *args):
        """As _call, but returns what C returned (a status is not checked)."""
        with self._lock:
            return getattr(_lib.lib(), name)(self._handle(), *args)

    def _release(self):
        """Frees the C handle once; further calls raise InvalidState."""
        with self._lock:
            h, self._h = self._h, None
        if h is not None:
            free = getattr(_lib._state, self._free_name, None) if _lib._state else None
            if free is not None:
                free(h)

    def close(self):
        self._release()

    def __enter__(self):
        self._handle()
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __del__(self):
        try:
            self.close()
        except Exception:  # interpreter shutdown: modules may already be gone
            pass


def text_arg(value, what="text"):
    """str or bytes -> UTF-8 bytes without NUL (C strings end at the first NUL)."""
    if isinstance(value, str):
        b = value.encode("utf-8")
    elif isinstance(value, (bytes, bytearray, memoryview)):
        b = bytes(value)
    else:
        raise InvalidArgument("%s must be str or bytes, not %s" % (what, type(value).__name__))
    if b"\0" in b:
        raise InvalidArgument("%s contains a NUL character at byte %d" % (what, b.index(b"\0")))
    return b


def path_arg(value, what="path"):
    try:
        b = os.fsencode(value)
    except TypeError:
        raise InvalidArgument("%s must be a str, bytes or os.PathLike, not %s"
                              % (what, type(value).__name__)) from None
    if b"\0" in b:
        raise InvalidArgument("%s contains a NUL character" % what)
    return b


def ids_arg(ids, what="ids"):
    """An iterable of ints -> (ctypes int32 array, n). Range-checked here, so a
    huge Python int never wraps silently into a valid-looking token id."""
    if isinstance(ids, (str, bytes)):
        raise InvalidArgument("%s must be a sequence of token ids (ints), not %s"
                              % (what, type(ids).__name__))
    try:
        values = list(ids)
    except TypeError:
        raise InvalidArgument("%s must be a sequence of token ids (ints), not %s"
                              % (what, type(ids).__name__)) from None
    out = (ctypes.c_int32 * max(len(values), 1))()
    for i, v in enumerate(values):
        try:
            n = operator.index(v)
        except TypeError:
            raise InvalidArgument("%s[%d] is %r, not an int" % (what, i, v)) from None
        if not INT32_MIN <= n <= INT32_MAX:
            raise InvalidArgument("%s[%d] = %d does not fit a 32-bit token id" % (what, i, n))
        out[i] = n
    return out, len(values)


def string_array(strings, what):
    """[str] -> (keep-alive list, char** array)."""
    encoded = [text_arg(s, what) for s in strings]
    arr = (ctypes.c_char_p * max(len(encoded), 1))(*encoded)
    return encoded, arr


def fill_buffer(call, first_cap=256):
    """Runs call(buf, cap, out_len) with a growing buffer, the way lmrt's
    buffer-filling calls ask (LMRT_E_BUFFER_TOO_SMALL sets the needed length)."""
    cap = first_cap
    out_len = ctypes.c_size_t()
    for _ in range(4):
        buf = ctypes.create_string_buffer(cap)
        st = call(buf, cap, ctypes.byref(out_len))
        if st == -10 and out_len.value >= cap:       # LMRT_E_BUFFER_TOO_SMALL
            cap = out_len.value + 1
            continue
        _lib.check(st)
        return buf.raw[:out_len.value]
    _lib.check(st)
