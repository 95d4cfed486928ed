"""errors.py - the exceptions of the lmrt binding: one class per lmrt_status code,
plus the three the binding raises itself (library not found, ABI mismatch, layout
mismatch). Knows nothing about ctypes; _lib.py maps a failed call to a class here.
"""
import builtins

__all__ = [
    "Error", "LibraryNotFoundError", "AbiError", "LayoutError",
    "InvalidArgument", "OutOfMemory", "IOError", "FormatError", "Unsupported",
    "NotFound", "NotLicensed", "ContextFull", "Aborted", "BufferTooSmall", "Mismatch",
    "BackendError", "InvalidState", "InternalError", "error_for_status",
]


class Error(Exception):
    """Base of every lmrt error.

    .status  the lmrt_status code (a negative int; 0 for errors the binding
             raises itself, such as LibraryNotFoundError)
    .message the text of lmrt_last_error() (or the binding's own message)
    .name    the constant name, e.g. "LMRT_E_FORMAT"
    """

    status = 0
    name = ""

    def __init__(self, message="", status=None):
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status

    def __str__(self):
        if self.name:
            return "%s: %s" % (self.name, self.message) if self.message else self.name
        return self.message

    def __repr__(self):
        return "%s(%r, status=%d)" % (type(self).__name__, self.message, self.status)


class LibraryNotFoundError(Error, builtins.OSError):
    """liblmrt could not be found or loaded; the message lists every place tried."""

    def __init__(self, message, tried=()):
        Error.__init__(self, message)
        self.tried = list(tried)


class AbiError(Error):
    """The library's ABI version (lmrt_abi_version) is not the one this binding
    was written for, or it lacks functions the binding needs."""


class LayoutError(AbiError):
    """A struct declared by the binding does not match the library's layout."""


def _status_class(status, name, doc, *extra_bases):
    cls = type(name, (Error,) + extra_bases, {"__doc__": doc, "__module__": __name__})
    cls.status = status
    return cls


# Each class also derives from the builtin exception a Python programmer would
# catch for the same trouble (ValueError for a bad argument, OSError for I/O...).
InvalidArgument = _status_class(-1, "InvalidArgument", "LMRT_E_INVALID_ARG: a NULL handle, "
                                "a bad value, a malformed region code.", builtins.ValueError)
OutOfMemory = _status_class(-2, "OutOfMemory", "LMRT_E_NOMEM: an allocation failed; nothing "
                            "was changed.", builtins.MemoryError)
IOError = _status_class(-3, "IOError", "LMRT_E_IO: a file could not be opened, mapped or "
                        "read. Also a builtin OSError.", builtins.OSError)
FormatError = _status_class(-4, "FormatError", "LMRT_E_FORMAT: a file or blob is malformed "
                            "(the message names offset and field).", builtins.ValueError)
Unsupported = _status_class(-5, "Unsupported", "LMRT_E_UNSUPPORTED: valid, but not "
                            "implemented by this build.", builtins.NotImplementedError)
NotFound = _status_class(-6, "NotFound", "LMRT_E_NOT_FOUND: a key, tensor, token or device "
                         "does not exist. Also a KeyError, so mappings behave.",
                         builtins.KeyError)
NotLicensed = _status_class(-7, "NotLicensed", "LMRT_E_NOT_LICENSED: the modality is not "
                            "licensed in the context's region.", builtins.PermissionError)
ContextFull = _status_class(-8, "ContextFull", "LMRT_E_CONTEXT_FULL: the session's context "
                            "window has no room left.")
Aborted = _status_class(-9, "Aborted", "LMRT_E_ABORTED: the caller's abort callback asked "
                        "to stop.")
BufferTooSmall = _status_class(-10, "BufferTooSmall", "LMRT_E_BUFFER_TOO_SMALL: a caller "
                               "buffer is too small (the binding normally retries).")
Mismatch = _status_class(-11, "Mismatch", "LMRT_E_MISMATCH: a state blob belongs to another "
                         "model or format.", builtins.ValueError)
BackendError = _status_class(-12, "BackendError", "LMRT_E_BACKEND: the compute backend or "
                             "device failed.", builtins.RuntimeError)
InvalidState = _status_class(-13, "InvalidState", "LMRT_E_INVALID_STATE: the handle cannot "
                             "do this now (closed, or its model or context was freed).",
                             builtins.RuntimeError)
InternalError = _status_class(-14, "InternalError", "LMRT_E_INTERNAL: a bug in lmrt; please "
                              "report it with the message.", builtins.RuntimeError)

_NAMES = {
    -1: "LMRT_E_INVALID_ARG", -2: "LMRT_E_NOMEM", -3: "LMRT_E_IO", -4: "LMRT_E_FORMAT",
    -5: "LMRT_E_UNSUPPORTED", -6: "LMRT_E_NOT_FOUND", -7: "LMRT_E_NOT_LICENSED",
    -8: "LMRT_E_CONTEXT_FULL", -9: "LMRT_E_ABORTED", -10: "LMRT_E_BUFFER_TOO_SMALL",
    -11: "LMRT_E_MISMATCH", -12: "LMRT_E_BACKEND", -13: "LMRT_E_INVALID_STATE",
    -14: "LMRT_E_INTERNAL",
}
_BY_STATUS = {}
for _cls in (InvalidArgument, OutOfMemory, IOError, FormatError, Unsupported, NotFound,
             NotLicensed, ContextFull, Aborted, BufferTooSmall, Mismatch, BackendError,
             InvalidState, InternalError):
    _cls.name = _NAMES[_cls.status]
    _BY_STATUS[_cls.status] = _cls
del _cls


def error_for_status(status, message):
    """The exception for a failed call: the class of its status code, or Error
    itself (with that status) for a code newer than this binding."""
    cls = _BY_STATUS.get(status)
    if cls is None:
        err = Error(message, status)
        err.name = "LMRT_E_(%d)" % status
        return err
    return cls(message)
