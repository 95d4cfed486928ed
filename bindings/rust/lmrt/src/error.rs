//! error.rs - lmrt::Error: a status (one variant per lmrt_status code, plus the
//! binding's own ABI and layout checks) and the message of lmrt_last_error().

use std::ffi::CStr;
use std::fmt;

use lmrt_sys as sys;

/// What kind of failure; the numbers of `code()` are the C library's and stable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Status {
    /// LMRT_E_INVALID_ARG: a bad value, a malformed region code, a NUL in a string.
    InvalidArgument,
    /// LMRT_E_NOMEM: an allocation failed; nothing was changed.
    OutOfMemory,
    /// LMRT_E_IO: a file could not be opened, mapped or read.
    Io,
    /// LMRT_E_FORMAT: a file or blob is malformed.
    Format,
    /// LMRT_E_UNSUPPORTED: valid, but not implemented by this build.
    Unsupported,
    /// LMRT_E_NOT_FOUND: a key, tensor, token or device does not exist.
    NotFound,
    /// LMRT_E_NOT_LICENSED: the modality is not licensed in the context's region.
    NotLicensed,
    /// LMRT_E_CONTEXT_FULL: the session's context window has no room left.
    ContextFull,
    /// LMRT_E_ABORTED: the caller's abort callback asked to stop.
    Aborted,
    /// LMRT_E_BUFFER_TOO_SMALL (the binding normally retries with a larger buffer).
    BufferTooSmall,
    /// LMRT_E_MISMATCH: a state blob belongs to another model or format.
    Mismatch,
    /// LMRT_E_BACKEND: the compute backend or device failed.
    Backend,
    /// LMRT_E_INVALID_STATE: the handle cannot do this now (its model or context was freed).
    InvalidState,
    /// LMRT_E_INTERNAL: a bug in lmrt.
    Internal,
    /// The library's ABI version or struct layouts are not the ones this binding was
    /// built for (the binding's own check; no C code).
    Abi,
    /// A status code newer than this binding.
    Other(i32),
}

impl Status {
    /// The lmrt_status number (0 for `Abi`, which is the binding's own).
    pub fn code(self) -> i32 {
        match self {
            Status::InvalidArgument => sys::LMRT_E_INVALID_ARG,
            Status::OutOfMemory => sys::LMRT_E_NOMEM,
            Status::Io => sys::LMRT_E_IO,
            Status::Format => sys::LMRT_E_FORMAT,
            Status::Unsupported => sys::LMRT_E_UNSUPPORTED,
            Status::NotFound => sys::LMRT_E_NOT_FOUND,
            Status::NotLicensed => sys::LMRT_E_NOT_LICENSED,
            Status::ContextFull => sys::LMRT_E_CONTEXT_FULL,
            Status::Aborted => sys::LMRT_E_ABORTED,
            Status::BufferTooSmall => sys::LMRT_E_BUFFER_TOO_SMALL,
            Status::Mismatch => sys::LMRT_E_MISMATCH,
            Status::Backend => sys::LMRT_E_BACKEND,
            Status::InvalidState => sys::LMRT_E_INVALID_STATE,
            Status::Internal => sys::LMRT_E_INTERNAL,
            Status::Abi => 0,
            Status::Other(c) => c,
        }
    }

    pub fn from_code(code: i32) -> Status {
        match code {
            sys::LMRT_E_INVALID_ARG => Status::InvalidArgument,
            sys::LMRT_E_NOMEM => Status::OutOfMemory,
            sys::LMRT_E_IO => Status::Io,
            sys::LMRT_E_FORMAT => Status::Format,
            sys::LMRT_E_UNSUPPORTED => Status::Unsupported,
            sys::LMRT_E_NOT_FOUND => Status::NotFound,
            sys::LMRT_E_NOT_LICENSED => Status::NotLicensed,
            sys::LMRT_E_CONTEXT_FULL => Status::ContextFull,
            sys::LMRT_E_ABORTED => Status::Aborted,
            sys::LMRT_E_BUFFER_TOO_SMALL => Status::BufferTooSmall,
            sys::LMRT_E_MISMATCH => Status::Mismatch,
            sys::LMRT_E_BACKEND => Status::Backend,
            sys::LMRT_E_INVALID_STATE => Status::InvalidState,
            sys::LMRT_E_INTERNAL => Status::Internal,
            c => Status::Other(c),
        }
    }

    /// The constant's name, e.g. "LMRT_E_FORMAT".
    pub fn name(self) -> String {
        match self {
            Status::Abi => "LMRT_ABI_MISMATCH".to_string(),
            Status::Other(c) => format!("LMRT_E_({})", c),
            s => unsafe { cstr(sys::lmrt_status_str(s.code())) },
        }
    }
}

/// An error from lmrt: the status and the library's message naming what was wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    pub status: Status,
    pub message: String,
}

impl Error {
    pub fn new(status: Status, message: impl Into<String>) -> Error {
        Error {
            status,
            message: message.into(),
        }
    }

    /// The error of a failed call, with this thread's lmrt_last_error().
    pub(crate) fn last(code: i32) -> Error {
        Error {
            status: Status::from_code(code),
            message: unsafe { cstr(sys::lmrt_last_error()) },
        }
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Error {
        Error::new(Status::InvalidArgument, message)
    }

    pub(crate) fn state(message: impl Into<String>) -> Error {
        Error::new(Status::InvalidState, message)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.status.name(), self.message)
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;

/// Ok for LMRT_OK, else the error with its message.
pub(crate) fn check(code: i32) -> Result<()> {
    if code == sys::LMRT_OK {
        Ok(())
    } else {
        Err(Error::last(code))
    }
}

/// A C string owned by lmrt as a String ("" for NULL).
///
/// # Safety
/// `p` is NULL or a valid NUL-terminated string.
pub(crate) unsafe fn cstr(p: *const std::os::raw::c_char) -> String {
    if p.is_null() {
        String::new()
    } else {
        CStr::from_ptr(p).to_string_lossy().into_owned()
    }
}

/// A fixed char array of a struct as a String (up to its first NUL).
pub(crate) fn carray(a: &[std::os::raw::c_char]) -> String {
    let bytes: Vec<u8> = a
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}
