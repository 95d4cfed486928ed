//! model.rs - lmrt::Model: loading (file, memory, built-in), info, metadata,
//! tensors, tokens, chat formatting and the capability query.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::os::raw::c_char;
use std::path::Path;
use std::ptr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use lmrt_sys as sys;

use crate::error::{carray, check, cstr, Error, Result, Status};
use crate::{abi, cstring};

/// One of the modalities a model may have.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Modality {
    Text,
    Image,
    Audio,
}

impl Modality {
    pub const ALL: [Modality; 3] = [Modality::Text, Modality::Image, Modality::Audio];

    fn bit(self) -> u32 {
        match self {
            Modality::Text => sys::LMRT_MODALITY_TEXT,
            Modality::Image => sys::LMRT_MODALITY_IMAGE,
            Modality::Audio => sys::LMRT_MODALITY_AUDIO,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Modality::Text => "text",
            Modality::Image => "image",
            Modality::Audio => "audio",
        }
    }
}

/// A set of modalities (the LMRT_MODALITY_* mask).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Modalities(pub u32);

impl Modalities {
    pub fn contains(self, m: Modality) -> bool {
        self.0 & m.bit() != 0
    }

    pub fn iter(self) -> impl Iterator<Item = Modality> {
        Modality::ALL.into_iter().filter(move |m| self.contains(*m))
    }

    /// ["text", "image", ...] in that order.
    pub fn names(self) -> Vec<&'static str> {
        self.iter().map(Modality::name).collect()
    }
}

/// lmrt_model_info as Rust values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelInfo {
    pub architecture: String,
    pub name: String,
    pub file_type: String,
    pub n_params: i64,
    pub n_bytes: i64,
    pub n_layer: i32,
    pub n_embd: i32,
    pub n_head: i32,
    pub n_head_kv: i32,
    pub n_ff: i32,
    pub n_ctx_train: i32,
    pub n_vocab: i32,
    pub gguf_version: i32,
    pub n_tensors: i64,
    pub n_metadata: i64,
    pub modalities: Modalities,
}

/// One entry of the tensor table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorInfo {
    pub name: String,
    pub type_name: String,
    pub type_id: i32,
    /// dims[0] is the contiguous one.
    pub dims: Vec<i64>,
    pub offset: u64,
    pub n_bytes: u64,
}

/// What the runtime offers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuntimeInfo {
    pub version: String,
    /// "cpu", "cuda"
    pub backends: Vec<&'static str>,
    pub cpu_simd: String,
    pub n_cuda_devices: i32,
}

/// What a model may do in a region (lmrt_capabilities).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Capabilities {
    /// Upper-cased; "" when unset.
    pub region: String,
    /// False for an unset or unassigned code (which fails closed).
    pub region_known: bool,
    pub region_in_eu: bool,
    pub present: Modalities,
    pub licensed: Modalities,
    /// Why each present-but-withheld modality is withheld.
    pub withheld: BTreeMap<Modality, String>,
    pub runtime: RuntimeInfo,
}

impl Capabilities {
    pub(crate) fn from_c(c: &sys::lmrt_capabilities) -> Capabilities {
        let present = Modalities(c.modalities_present);
        let licensed = Modalities(c.modalities_licensed);
        let mut withheld = BTreeMap::new();
        for (i, m) in Modality::ALL.iter().enumerate() {
            if present.contains(*m) && !licensed.contains(*m) {
                withheld.insert(*m, carray(&c.withheld_reason[i]));
            }
        }
        let mut backends = Vec::new();
        if c.backends & sys::LMRT_BACKEND_CPU != 0 {
            backends.push("cpu");
        }
        if c.backends & sys::LMRT_BACKEND_CUDA != 0 {
            backends.push("cuda");
        }
        Capabilities {
            region: carray(&c.region),
            region_known: c.region_known,
            region_in_eu: c.region_in_eu,
            present,
            licensed,
            withheld,
            runtime: RuntimeInfo {
                version: carray(&c.version),
                backends,
                cpu_simd: carray(&c.cpu_simd),
                n_cuda_devices: c.n_cuda_devices,
            },
        }
    }
}

/// A metadata value. Arrays are read whole.
#[derive(Clone, Debug, PartialEq)]
pub enum MetaValue {
    Int(i64),
    Bool(bool),
    Float(f64),
    String(String),
    Array(Vec<MetaValue>),
}

/// The model handle shared by the Model and everything made from it. The C
/// library keeps a freed model's memory while contexts use it; this keeps the
/// bytes of a memory-loaded model alive exactly as long.
pub(crate) struct ModelRef {
    pub(crate) ptr: *mut sys::lmrt_model,
    pub(crate) freed: AtomicBool,
    _bytes: Option<Box<[u8]>>,
}

// The C model is read-only after load and safe to share between threads
// (doc/abi.md, "Threading contract").
unsafe impl Send for ModelRef {}
unsafe impl Sync for ModelRef {}

impl ModelRef {
    /// The handle while the Model is alive; InvalidState after it was dropped.
    pub(crate) fn live(&self) -> Result<*mut sys::lmrt_model> {
        if self.freed.load(Ordering::Acquire) {
            Err(Error::state(
                "the model was freed (its lmrt::Model was dropped)",
            ))
        } else {
            Ok(self.ptr)
        }
    }
}

/// A loaded model: weights, vocabulary and metadata. Send + Sync: share it
/// between threads with `Arc<Model>`. Dropping it frees the model; contexts and
/// sessions made from it then fail with `Status::InvalidState`.
pub struct Model {
    pub(crate) r: Arc<ModelRef>,
}

impl Drop for Model {
    fn drop(&mut self) {
        self.r.freed.store(true, Ordering::Release);
        unsafe { sys::lmrt_model_free(self.r.ptr) };
    }
}

fn model_params(projector: Option<&CString>) -> sys::lmrt_model_params {
    let mut p = std::mem::MaybeUninit::<sys::lmrt_model_params>::zeroed();
    unsafe {
        sys::lmrt_model_params_init(
            p.as_mut_ptr(),
            std::mem::size_of::<sys::lmrt_model_params>(),
        )
    };
    let mut p = unsafe { p.assume_init() };
    p.projector_path = projector.map_or(ptr::null(), |c| c.as_ptr());
    p
}

fn path_cstring(path: &Path, what: &str) -> Result<CString> {
    use std::os::unix::ffi::OsStrExt;
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| Error::invalid(format!("{} contains a NUL byte", what)))
}

impl Model {
    fn wrap(ptr: *mut sys::lmrt_model, bytes: Option<Box<[u8]>>) -> Result<Model> {
        let m = Model {
            r: Arc::new(ModelRef {
                ptr,
                freed: AtomicBool::new(false),
                _bytes: bytes,
            }),
        };
        abi::ensure_model_structs(ptr)?;
        Ok(m)
    }

    /// The model built into the library (stories260K).
    pub fn builtin() -> Result<Model> {
        abi::ensure()?;
        let p = model_params(None);
        let mut out = ptr::null_mut();
        check(unsafe { sys::lmrt_model_load_builtin(&p, &mut out) })?;
        Model::wrap(out, None)
    }

    /// Opens and validates a GGUF file.
    pub fn load(path: impl AsRef<Path>) -> Result<Model> {
        Model::load_with_projector(path, None::<&Path>)
    }

    /// A GGUF file plus an optional projector GGUF (image/audio encoders).
    pub fn load_with_projector(
        path: impl AsRef<Path>,
        projector: Option<impl AsRef<Path>>,
    ) -> Result<Model> {
        abi::ensure()?;
        let path = path_cstring(path.as_ref(), "path")?;
        let proj = match projector {
            Some(p) => Some(path_cstring(p.as_ref(), "projector")?),
            None => None,
        };
        let p = model_params(proj.as_ref());
        let mut out = ptr::null_mut();
        check(unsafe { sys::lmrt_model_load(path.as_ptr(), &p, &mut out) })?;
        Model::wrap(out, None)
    }

    /// Loads a GGUF image from memory (the bytes are kept with the model).
    pub fn from_bytes(data: impl Into<Vec<u8>>) -> Result<Model> {
        abi::ensure()?;
        let bytes: Box<[u8]> = data.into().into_boxed_slice();
        let p = model_params(None);
        let mut out = ptr::null_mut();
        check(unsafe {
            sys::lmrt_model_load_memory(bytes.as_ptr() as *const _, bytes.len(), &p, &mut out)
        })?;
        Model::wrap(out, Some(bytes))
    }

    pub(crate) fn ptr(&self) -> *mut sys::lmrt_model {
        self.r.ptr
    }

    pub fn info(&self) -> Result<ModelInfo> {
        let mut c = std::mem::MaybeUninit::<sys::lmrt_model_info>::zeroed();
        unsafe {
            sys::lmrt_model_info_init(c.as_mut_ptr(), std::mem::size_of::<sys::lmrt_model_info>())
        };
        check(unsafe { sys::lmrt_model_get_info(self.ptr(), c.as_mut_ptr()) })?;
        let c = unsafe { c.assume_init() };
        Ok(ModelInfo {
            architecture: unsafe { cstr(c.architecture) },
            name: unsafe { cstr(c.name) },
            file_type: unsafe { cstr(c.file_type) },
            n_params: c.n_params,
            n_bytes: c.n_bytes,
            n_layer: c.n_layer,
            n_embd: c.n_embd,
            n_head: c.n_head,
            n_head_kv: c.n_head_kv,
            n_ff: c.n_ff,
            n_ctx_train: c.n_ctx_train,
            n_vocab: c.n_vocab,
            gguf_version: c.gguf_version,
            n_tensors: c.n_tensors,
            n_metadata: c.n_metadata,
            modalities: Modalities(c.modalities),
        })
    }

    pub fn tensors(&self) -> Result<Vec<TensorInfo>> {
        let n = self.info()?.n_tensors;
        let mut out = Vec::with_capacity(n.max(0) as usize);
        for i in 0..n {
            let mut t = std::mem::MaybeUninit::<sys::lmrt_tensor_info>::zeroed();
            unsafe {
                sys::lmrt_tensor_info_init(
                    t.as_mut_ptr(),
                    std::mem::size_of::<sys::lmrt_tensor_info>(),
                )
            };
            check(unsafe { sys::lmrt_model_tensor_info(self.ptr(), i, t.as_mut_ptr()) })?;
            let t = unsafe { t.assume_init() };
            let n_dims = t.n_dims.clamp(0, 4) as usize;
            out.push(TensorInfo {
                name: unsafe { cstr(t.name) },
                type_name: unsafe { cstr(t.type_name) },
                type_id: t.type_,
                dims: t.dims[..n_dims].to_vec(),
                offset: t.offset,
                n_bytes: t.n_bytes,
            });
        }
        Ok(out)
    }

    /// What this model may do in `region` (ISO 3166-1 alpha-2); None is unknown
    /// and fails closed. A malformed code is `Status::InvalidArgument`.
    pub fn capabilities(&self, region: Option<&str>) -> Result<Capabilities> {
        let region = region.map(|r| cstring(r, "region")).transpose()?;
        let mut c = std::mem::MaybeUninit::<sys::lmrt_capabilities>::zeroed();
        unsafe {
            sys::lmrt_capabilities_init(
                c.as_mut_ptr(),
                std::mem::size_of::<sys::lmrt_capabilities>(),
            )
        };
        check(unsafe {
            sys::lmrt_query_capabilities(
                self.ptr(),
                region.as_ref().map_or(ptr::null(), |r| r.as_ptr()),
                c.as_mut_ptr(),
            )
        })?;
        Ok(Capabilities::from_c(unsafe { &c.assume_init() }))
    }

    // -- metadata -----------------------------------------------------------

    /// The metadata keys, in file order.
    pub fn meta_keys(&self) -> Result<Vec<String>> {
        let n = self.info()?.n_metadata;
        (0..n)
            .map(|i| {
                let mut k: *const c_char = ptr::null();
                check(unsafe { sys::lmrt_model_meta_key(self.ptr(), i, &mut k) })?;
                Ok(unsafe { cstr(k) })
            })
            .collect()
    }

    /// A metadata value; a missing key is `Status::NotFound`.
    pub fn meta(&self, key: &str) -> Result<MetaValue> {
        let k = cstring(key, "key")?;
        let (mut t, mut et, mut n) = (0i32, 0i32, 0i64);
        check(unsafe {
            sys::lmrt_model_meta_type(self.ptr(), k.as_ptr(), &mut t, &mut et, &mut n)
        })?;
        if t == sys::LMRT_META_ARRAY as i32 {
            return (0..n)
                .map(|i| self.meta_element(&k, et, i))
                .collect::<Result<Vec<_>>>()
                .map(MetaValue::Array);
        }
        self.meta_scalar(&k, t)
    }

    fn meta_scalar(&self, k: &CString, t: i32) -> Result<MetaValue> {
        let m = self.ptr();
        match t as u32 {
            sys::LMRT_META_FLOAT32 | sys::LMRT_META_FLOAT64 => {
                let mut v = 0f64;
                check(unsafe { sys::lmrt_model_meta_float(m, k.as_ptr(), &mut v) })?;
                Ok(MetaValue::Float(v))
            }
            sys::LMRT_META_STRING => {
                let mut v: *const c_char = ptr::null();
                check(unsafe { sys::lmrt_model_meta_string(m, k.as_ptr(), &mut v) })?;
                Ok(MetaValue::String(unsafe { cstr(v) }))
            }
            _ => {
                let mut v = 0i64;
                check(unsafe { sys::lmrt_model_meta_int(m, k.as_ptr(), &mut v) })?;
                Ok(if t as u32 == sys::LMRT_META_BOOL {
                    MetaValue::Bool(v != 0)
                } else {
                    MetaValue::Int(v)
                })
            }
        }
    }

    fn meta_element(&self, k: &CString, et: i32, i: i64) -> Result<MetaValue> {
        let m = self.ptr();
        match et as u32 {
            sys::LMRT_META_FLOAT32 | sys::LMRT_META_FLOAT64 => {
                let mut v = 0f64;
                check(unsafe { sys::lmrt_model_meta_array_float(m, k.as_ptr(), i, &mut v) })?;
                Ok(MetaValue::Float(v))
            }
            sys::LMRT_META_STRING => {
                let (mut p, mut n): (*const c_char, usize) = (ptr::null(), 0);
                check(unsafe {
                    sys::lmrt_model_meta_array_string(m, k.as_ptr(), i, &mut p, &mut n)
                })?;
                let bytes = if n == 0 {
                    &[][..]
                } else {
                    unsafe { std::slice::from_raw_parts(p as *const u8, n) }
                };
                Ok(MetaValue::String(
                    String::from_utf8_lossy(bytes).into_owned(),
                ))
            }
            _ => {
                let mut v = 0i64;
                check(unsafe { sys::lmrt_model_meta_array_int(m, k.as_ptr(), i, &mut v) })?;
                Ok(if et as u32 == sys::LMRT_META_BOOL {
                    MetaValue::Bool(v != 0)
                } else {
                    MetaValue::Int(v)
                })
            }
        }
    }

    /// Any value as one line of text, arrays shortened to `max_elems`.
    pub fn meta_format(&self, key: &str, max_elems: i64) -> Result<String> {
        let k = cstring(key, "key")?;
        let bytes = fill_buffer(256, |buf, cap, n| unsafe {
            sys::lmrt_model_meta_format(self.ptr(), k.as_ptr(), max_elems, buf, cap, n)
        })?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    // -- tokens ---------------------------------------------------------------

    /// Text to token ids; `bos` prepends BOS when the vocabulary asks for it,
    /// `special` parses "<|eot_id|>"-style tokens in the text.
    pub fn tokenize(&self, text: &str, bos: bool, special: bool) -> Result<Vec<i32>> {
        let flags = (if bos { sys::LMRT_TOKENIZE_ADD_BOS } else { 0 })
            | (if special {
                sys::LMRT_TOKENIZE_PARSE_SPECIAL
            } else {
                0
            });
        let mut n = 0usize;
        let t = text.as_ptr() as *const c_char;
        check(unsafe {
            sys::lmrt_tokenize(self.ptr(), t, text.len(), flags, ptr::null_mut(), 0, &mut n)
        })?;
        let mut ids = vec![0i32; n];
        if n > 0 {
            check(unsafe {
                sys::lmrt_tokenize(
                    self.ptr(),
                    t,
                    text.len(),
                    flags,
                    ids.as_mut_ptr(),
                    n,
                    &mut n,
                )
            })?;
            ids.truncate(n);
        }
        Ok(ids)
    }

    /// Token ids to bytes (a token may hold part of a UTF-8 character).
    pub fn detokenize_bytes(&self, ids: &[i32], special: bool) -> Result<Vec<u8>> {
        let flags = if special {
            sys::LMRT_DETOKENIZE_SPECIAL
        } else {
            0
        };
        fill_buffer(16 * ids.len() + 64, |buf, cap, n| unsafe {
            sys::lmrt_detokenize(self.ptr(), ids.as_ptr(), ids.len(), flags, buf, cap, n)
        })
    }

    /// Token ids to text (invalid UTF-8 becomes U+FFFD).
    pub fn detokenize(&self, ids: &[i32]) -> Result<String> {
        Ok(String::from_utf8_lossy(&self.detokenize_bytes(ids, false)?).into_owned())
    }

    /// The id of BOS, EOS, EOT or PAD; None when the vocabulary has none.
    pub fn special_token(&self, which: SpecialToken) -> Result<Option<i32>> {
        let mut id = 0i32;
        let st = unsafe { sys::lmrt_model_special_token(self.ptr(), which as i32, &mut id) };
        if st == sys::LMRT_E_NOT_FOUND {
            return Ok(None);
        }
        check(st)?;
        Ok(Some(id))
    }

    /// Whether a token ends generation.
    pub fn is_eog(&self, token: i32) -> bool {
        unsafe { sys::lmrt_model_token_is_eog(self.ptr(), token) }
    }

    /// A conversation rendered in the model's chat format.
    pub fn chat_format(&self, messages: &[(&str, &str)], add_assistant: bool) -> Result<String> {
        let (roles, contents) = crate::session::chat_arrays(messages)?;
        let (r, c): (Vec<_>, Vec<_>) = (
            roles.iter().map(|s| s.as_ptr()).collect(),
            contents.iter().map(|s| s.as_ptr()).collect(),
        );
        let bytes = fill_buffer(256, |buf, cap, n| unsafe {
            sys::lmrt_chat_format(
                self.ptr(),
                r.as_ptr(),
                c.as_ptr(),
                r.len(),
                add_assistant,
                buf,
                cap,
                n,
            )
        })?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    // -- contexts and sessions -------------------------------------------------

    /// A context on this model (see [`crate::ContextOptions`]).
    pub fn context(&self, options: &crate::ContextOptions) -> Result<crate::Context> {
        crate::Context::new(self, options)
    }

    /// A session on a context of its own in `region` (None: unknown, which
    /// licenses only what is licensed everywhere), default settings otherwise.
    pub fn session(&self, region: Option<&str>) -> Result<crate::Session> {
        let mut o = crate::ContextOptions::new();
        if let Some(r) = region {
            o = o.region(r);
        }
        self.session_with(&o, &crate::SessionOptions::default())
    }

    /// A session on a context of its own, with explicit options.
    pub fn session_with(
        &self,
        ctx: &crate::ContextOptions,
        s: &crate::SessionOptions,
    ) -> Result<crate::Session> {
        let ctx = Arc::new(crate::Context::new(self, ctx)?);
        crate::Session::create(&ctx, s, Some(ctx.clone()))
    }
}

/// Special tokens of a vocabulary (LMRT_TOKEN_*).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub enum SpecialToken {
    Bos = 0,
    Eos = 1,
    Eot = 2,
    Pad = 3,
}

/// Runs a buffer-filling call, growing the buffer on LMRT_E_BUFFER_TOO_SMALL.
pub(crate) fn fill_buffer(
    first: usize,
    call: impl Fn(*mut c_char, usize, *mut usize) -> i32,
) -> Result<Vec<u8>> {
    let mut cap = first.max(16);
    for _ in 0..4 {
        let mut buf = vec![0u8; cap];
        let mut n = 0usize;
        let st = call(buf.as_mut_ptr() as *mut c_char, cap, &mut n);
        if st == sys::LMRT_E_BUFFER_TOO_SMALL && n >= cap {
            cap = n + 1;
            continue;
        }
        check(st)?;
        buf.truncate(n);
        return Ok(buf);
    }
    Err(Error::new(
        Status::BufferTooSmall,
        "the needed buffer size kept growing",
    ))
}

/// The devices of one backend; empty when it has none.
pub fn devices(backend: crate::Backend) -> Result<Vec<DeviceInfo>> {
    abi::ensure()?;
    let code = backend as i32;
    let mut n = 0i32;
    check(unsafe { sys::lmrt_device_count(code, &mut n) })?;
    let mut out = Vec::new();
    for i in 0..n {
        let mut d = std::mem::MaybeUninit::<sys::lmrt_device_info>::zeroed();
        unsafe {
            sys::lmrt_device_info_init(d.as_mut_ptr(), std::mem::size_of::<sys::lmrt_device_info>())
        };
        check(unsafe { sys::lmrt_device_get_info(code, i, d.as_mut_ptr()) })?;
        let d = unsafe { d.assume_init() };
        out.push(DeviceInfo {
            index: d.index,
            name: carray(&d.name),
            total_memory: d.total_memory,
            free_memory: d.free_memory,
            description: carray(&d.description),
        });
    }
    Ok(out)
}

/// One device of a backend.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceInfo {
    pub index: i32,
    pub name: String,
    pub total_memory: u64,
    pub free_memory: u64,
    pub description: String,
}
