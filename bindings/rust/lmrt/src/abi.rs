//! abi.rs - the checks made once, on first use, that the library this process
//! runs with is the one the bindings were generated for: its ABI version, and
//! that its size-versioned structs agree with ours.
//!
//! The struct checks are those of the Python binding (bindings/python/lmrt/_structs.py):
//! 1. each *_init, given sizeof(ours) over a buffer filled with a sentinel and
//!    followed by guard bytes, stores exactly that size, writes every byte of
//!    the struct and none of the guard;
//! 2. the documented non-zero defaults read back at our field offsets
//!    (lmrt_sampler_params: 0.8f, 40, 0.95f, 0.05f, 1, 64; lmrt_generate_params:
//!    256; lmrt_model_params: use_mmap true after a NULL projector_path);
//! 3. output structs are filled "as far as size reaches": with size = 4096 over
//!    two different sentinels, the bytes the library writes give its own sizeof,
//!    which must not be smaller than ours (lmrt_device_info here; model_info and
//!    capabilities, whose `version` must equal lmrt_version(), on the first model).
//!
//! bindgen's layout tests (cargo test -p lmrt-sys) add the compile-time side:
//! every offset of every field equals what clang computed from the header.

use std::mem::size_of;
use std::sync::Mutex;

use lmrt_sys as sys;

use crate::error::{cstr, Error, Result, Status};

static CHECKED: Mutex<Option<Result<()>>> = Mutex::new(None);
static MODEL_CHECKED: Mutex<bool> = Mutex::new(false);

const GUARD: usize = 64;
const PROBE: usize = 4096;
const SENTINELS: [u8; 2] = [0xA5, 0x5A];

/// Runs the checks once per process; later calls return the first answer.
pub(crate) fn ensure() -> Result<()> {
    let mut done = CHECKED.lock().unwrap_or_else(|e| e.into_inner());
    if done.is_none() {
        *done = Some(check_against(sys::ABI_VERSION));
    }
    done.clone().unwrap()
}

fn fail(st: &str, what: String) -> Error {
    Error::new(
        Status::Abi,
        format!(
            "struct {}: {}. lmrt-sys does not match the loaded library; rebuild the binding \
             against it",
            st, what
        ),
    )
}

/// The whole load-time check against an expected ABI version (the tests pass a
/// wrong one to see the mismatch error).
pub fn check_against(expected: i32) -> Result<()> {
    let found = unsafe { sys::lmrt_abi_version() };
    if found != expected {
        let path = unsafe { cstr(sys::lmrt_version()) };
        return Err(Error::new(
            Status::Abi,
            format!(
                "liblmrt {} has ABI version {}, but this binding was built for ABI version {} \
                 (LMRT_ABI_VERSION of include/lmrt.h); use the binding that matches the library",
                path, found, expected
            ),
        ));
    }
    check_structs()
}

/// Check 1 for one struct; returns its bytes after init.
fn init_probe<T>(name: &str, init: unsafe extern "C" fn(*mut T, usize)) -> Result<Vec<u8>> {
    let size = size_of::<T>();
    // u64 storage: aligned for every field of every lmrt struct.
    let mut buf = vec![u64::from_ne_bytes([SENTINELS[0]; 8]); (size + GUARD + 7) / 8];
    unsafe { init(buf.as_mut_ptr() as *mut T, size) };
    let bytes: Vec<u8> = buf.iter().flat_map(|w| w.to_ne_bytes()).collect();
    let stored = usize::from_ne_bytes(bytes[..size_of::<usize>()].try_into().unwrap());
    if stored != size {
        return Err(fail(
            name,
            format!("init(ptr, {}) stored size {}", size, stored),
        ));
    }
    if let Some(i) = (size..size + GUARD).find(|&i| bytes[i] != SENTINELS[0]) {
        return Err(fail(
            name,
            format!("init(ptr, {}) wrote past the struct (byte {})", size, i),
        ));
    }
    if let Some(i) = (0..size).find(|&i| bytes[i] == SENTINELS[0]) {
        return Err(fail(name, format!("init left byte {} unwritten", i)));
    }
    Ok(bytes[..size].to_vec())
}

fn read<T: Copy>(bytes: &[u8]) -> T {
    assert!(bytes.len() >= size_of::<T>());
    unsafe { std::ptr::read_unaligned(bytes.as_ptr() as *const T) }
}

/// Check 3: `call` fills an output struct whose size field says PROBE. Returns
/// (the struct, the library's sizeof), or None when the call failed.
pub(crate) fn out_probe<T: Copy>(
    name: &str,
    call: &dyn Fn(*mut T) -> i32,
) -> Result<Option<(T, usize)>> {
    let mut images = Vec::new();
    for s in SENTINELS {
        let mut buf = vec![u64::from_ne_bytes([s; 8]); PROBE / 8];
        let bytes = buf.as_mut_ptr() as *mut u8;
        unsafe { std::ptr::copy_nonoverlapping(PROBE.to_ne_bytes().as_ptr(), bytes, 8) };
        if call(buf.as_mut_ptr() as *mut T) != 0 {
            return Ok(None);
        }
        images.push(
            buf.iter()
                .flat_map(|w| w.to_ne_bytes())
                .collect::<Vec<u8>>(),
        );
    }
    let last = (0..PROBE)
        .rev()
        .find(|&i| images[0][i] != SENTINELS[0] || images[1][i] != SENTINELS[1]);
    let align = std::mem::align_of::<T>();
    let lib_size = last
        .map(|i| (i + 1 + align - 1) / align * align)
        .unwrap_or(0);
    if lib_size < size_of::<T>() {
        return Err(fail(
            name,
            format!(
                "the library fills {} bytes, the binding declares {}",
                lib_size,
                size_of::<T>()
            ),
        ));
    }
    Ok(Some((read::<T>(&images[0]), lib_size)))
}

fn check_structs() -> Result<()> {
    init_probe("lmrt_device_info", sys::lmrt_device_info_init)?;
    init_probe("lmrt_model_info", sys::lmrt_model_info_init)?;
    init_probe("lmrt_tensor_info", sys::lmrt_tensor_info_init)?;
    init_probe("lmrt_capabilities", sys::lmrt_capabilities_init)?;
    init_probe("lmrt_session_params", sys::lmrt_session_params_init)?;
    let c: sys::lmrt_context_params = read(&init_probe(
        "lmrt_context_params",
        sys::lmrt_context_params_init,
    )?);
    if !c.region.is_null()
        || !c.policy.is_null()
        || c.backend != 0
        || c.device != 0
        || c.n_threads != 0
    {
        return Err(fail(
            "lmrt_context_params",
            "defaults are not all zero/NULL".into(),
        ));
    }
    let m: sys::lmrt_model_params = read(&init_probe(
        "lmrt_model_params",
        sys::lmrt_model_params_init,
    )?);
    if !m.projector_path.is_null() || !m.use_mmap {
        return Err(fail(
            "lmrt_model_params",
            format!(
                "projector_path {:?}, use_mmap {} (expected NULL, true)",
                m.projector_path, m.use_mmap
            ),
        ));
    }
    let g: sys::lmrt_generate_params = read(&init_probe(
        "lmrt_generate_params",
        sys::lmrt_generate_params_init,
    )?);
    if g.max_tokens != 256
        || !g.stop.is_null()
        || g.n_stop != 0
        || g.on_token.is_some()
        || g.should_abort.is_some()
        || !g.user.is_null()
    {
        return Err(fail(
            "lmrt_generate_params",
            format!(
                "max_tokens reads {} (expected 256) or a pointer is not NULL",
                g.max_tokens
            ),
        ));
    }
    let s: sys::lmrt_sampler_params = read(&init_probe(
        "lmrt_sampler_params",
        sys::lmrt_sampler_params_init,
    )?);
    let want = sys::lmrt_sampler_params {
        size: size_of::<sys::lmrt_sampler_params>(),
        temperature: 0.8,
        top_k: 40,
        top_p: 0.95,
        min_p: 0.05,
        repeat_penalty: 1.0,
        repeat_last_n: 64,
        frequency_penalty: 0.0,
        presence_penalty: 0.0,
        seed: 0,
    };
    let same = s.temperature == want.temperature
        && s.top_k == want.top_k
        && s.top_p == want.top_p
        && s.min_p == want.min_p
        && s.repeat_penalty == want.repeat_penalty
        && s.repeat_last_n == want.repeat_last_n
        && s.frequency_penalty == 0.0
        && s.presence_penalty == 0.0
        && s.seed == 0;
    if !same {
        return Err(fail(
            "lmrt_sampler_params",
            format!("defaults read {:?}, expected {:?}", s, want),
        ));
    }
    let dev = out_probe::<sys::lmrt_device_info>("lmrt_device_info", &|p| unsafe {
        sys::lmrt_device_get_info(sys::LMRT_BACKEND_CPU as i32, 0, p)
    })?;
    if let Some((d, _)) = dev {
        if d.backend != sys::LMRT_BACKEND_CPU as i32 || d.index != 0 {
            return Err(fail(
                "lmrt_device_info",
                format!(
                    "CPU device 0 reads backend {}, index {}",
                    d.backend, d.index
                ),
            ));
        }
    }
    Ok(())
}

/// Check 3 for the structs that need a model, on the first model loaded.
pub(crate) fn ensure_model_structs(model: *mut sys::lmrt_model) -> Result<()> {
    let mut done = MODEL_CHECKED.lock().unwrap_or_else(|e| e.into_inner());
    if *done {
        return Ok(());
    }
    let info = out_probe::<sys::lmrt_model_info>("lmrt_model_info", &|p| unsafe {
        sys::lmrt_model_get_info(model, p)
    })?;
    let caps = out_probe::<sys::lmrt_capabilities>("lmrt_capabilities", &|p| unsafe {
        sys::lmrt_query_capabilities(model, b"us\0".as_ptr() as *const _, p)
    })?;
    if let (Some((info, _)), Some((caps, _))) = (info, caps) {
        let version = unsafe { cstr(sys::lmrt_version()) };
        let got = crate::error::carray(&caps.version);
        if got != version
            || crate::error::carray(&caps.region) != "US"
            || caps.modalities_present != info.modalities
        {
            return Err(fail("lmrt_capabilities", format!(
                "version reads {:?} (library {:?}), region {:?}, modalities {:#x} (model info {:#x})",
                got, version, crate::error::carray(&caps.region), caps.modalities_present,
                info.modalities)));
        }
    }
    *done = true;
    Ok(())
}
