//! Safe Rust binding of lmrt, an embeddable runtime for Llama-3-family models.
//!
//! ```no_run
//! let model = lmrt::Model::builtin()?;                 // the built-in stories260K
//! let mut s = model.session(Some("US"))?;
//! let opts = lmrt::GenerateOptions::new().max_tokens(64).temperature(0.0);
//! let text = s.generate(Some("Once upon a time"), &opts)?.collect::<lmrt::Result<String>>()?;
//! println!("{}", text);
//! # Ok::<(), lmrt::Error>(())
//! ```
//!
//! Ownership follows the C handles: [`Model`], [`Context`] and [`Session`] each
//! own one and free it on drop. A session made with [`Model::session`] owns its
//! context. Dropping a model or context while sessions still use it is allowed:
//! the C library keeps the memory, and calls through those sessions return
//! `Status::InvalidState`, never touch freed memory.
//!
//! Threads, as the header's contract says: `Model` and `Context` are Send + Sync;
//! `Session` is Send but not Sync (one thread at a time).
//!
//! The first constructor call checks the library: `lmrt_abi_version()` against
//! the bindings' `LMRT_ABI_VERSION`, and the struct layouts (see `abi.rs`); a
//! mismatch is an [`Error`] with `Status::Abi`.
//!
//! ```compile_fail,E0277
//! fn sync<T: Sync>() {}
//! sync::<lmrt::Session>();   // a Session is not Sync
//! ```

mod abi;
mod error;
mod model;
mod session;

use std::ffi::CString;

pub use error::{Error, Result, Status};
pub use model::{
    devices, Capabilities, DeviceInfo, MetaValue, Modalities, Modality, Model, ModelInfo,
    RuntimeInfo, SpecialToken, TensorInfo,
};
pub use session::{
    Backend, Context, ContextOptions, GenerateOptions, Generation, Sampler, Session,
    SessionOptions, StopReason, Token,
};

/// The raw bindings, for what the safe API does not cover.
pub use lmrt_sys as sys;

/// The ABI version these bindings were generated for (LMRT_ABI_VERSION).
pub const ABI_VERSION: i32 = lmrt_sys::ABI_VERSION;

/// lmrt_version() of the running library, e.g. "0.1.0".
pub fn version() -> Result<String> {
    abi::ensure()?;
    Ok(unsafe { error::cstr(lmrt_sys::lmrt_version()) })
}

/// lmrt_abi_version() of the running library (no check).
pub fn abi_version() -> i32 {
    unsafe { lmrt_sys::lmrt_abi_version() }
}

/// Runs the load-time checks against `expected` instead of [`ABI_VERSION`]:
/// lets tests see the mismatch error. Not needed otherwise.
#[doc(hidden)]
pub fn check_abi_against(expected: i32) -> Result<()> {
    abi::check_against(expected)
}

/// Runs the load-time checks (done implicitly by every constructor).
pub fn check_library() -> Result<()> {
    abi::ensure()
}

pub(crate) fn cstring(s: &str, what: &str) -> Result<CString> {
    CString::new(s).map_err(|e| {
        Error::invalid(format!(
            "{} contains a NUL character at byte {}",
            what,
            e.nul_position()
        ))
    })
}
