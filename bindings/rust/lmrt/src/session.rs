//! session.rs - lmrt::Context and lmrt::Session: feeding text, tokens, chats and
//! media, sampling, streaming generation with stop strings, logits, saved state
//! and forks.

use std::ffi::CString;
use std::os::raw::c_char;
use std::ptr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use lmrt_sys as sys;

use crate::cstring;
use crate::error::{check, Error, Result};
use crate::model::{Capabilities, Model, ModelRef};

/// Which compute backend a context uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(i32)]
pub enum Backend {
    /// The best available (a GPU when present, else the CPU).
    #[default]
    Auto = 0,
    Cpu = 1,
    Cuda = 2,
}

/// Settings of a [`Context`]: region and deployer policy (fixed for its life),
/// backend, device and threads.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ContextOptions {
    /// ISO 3166-1 alpha-2 ("US", "DE"); None is unknown, which licenses only
    /// what is licensed everywhere.
    pub region: Option<String>,
    /// Deployer policy text (doc/licensing.md); it can only narrow.
    pub policy: Option<String>,
    pub backend: Backend,
    pub device: i32,
    /// CPU threads; 0 is one per core.
    pub threads: i32,
}

impl ContextOptions {
    pub fn new() -> ContextOptions {
        ContextOptions::default()
    }
    pub fn region(mut self, region: &str) -> Self {
        self.region = Some(region.to_string());
        self
    }
    pub fn policy(mut self, policy: &str) -> Self {
        self.policy = Some(policy.to_string());
        self
    }
    pub fn backend(mut self, backend: Backend) -> Self {
        self.backend = backend;
        self
    }
    pub fn device(mut self, device: i32) -> Self {
        self.device = device;
        self
    }
    pub fn threads(mut self, threads: i32) -> Self {
        self.threads = threads;
        self
    }
}

pub(crate) struct ContextRef {
    ptr: *mut sys::lmrt_context,
    freed: AtomicBool,
    pub(crate) model: Arc<ModelRef>,
}

// Creating and freeing sessions on one context is thread-safe, and the context
// is otherwise read-only (doc/abi.md, "Threading contract").
unsafe impl Send for ContextRef {}
unsafe impl Sync for ContextRef {}

/// Execution resources for one model: backend, threads, region and policy.
/// One context serves many sessions. Send + Sync. Dropping it frees it; its
/// sessions then fail with `Status::InvalidState`.
pub struct Context {
    r: Arc<ContextRef>,
}

impl Drop for Context {
    fn drop(&mut self) {
        self.r.freed.store(true, Ordering::Release);
        unsafe { sys::lmrt_context_free(self.r.ptr) };
    }
}

impl Context {
    pub fn new(model: &Model, options: &ContextOptions) -> Result<Context> {
        let region = options
            .region
            .as_deref()
            .map(|r| cstring(r, "region"))
            .transpose()?;
        let policy = options
            .policy
            .as_deref()
            .map(|p| cstring(p, "policy"))
            .transpose()?;
        let mut p = std::mem::MaybeUninit::<sys::lmrt_context_params>::zeroed();
        unsafe {
            sys::lmrt_context_params_init(
                p.as_mut_ptr(),
                std::mem::size_of::<sys::lmrt_context_params>(),
            )
        };
        let mut p = unsafe { p.assume_init() };
        p.region = region.as_ref().map_or(ptr::null(), |r| r.as_ptr());
        p.policy = policy.as_ref().map_or(ptr::null(), |r| r.as_ptr());
        p.backend = options.backend as i32;
        p.device = options.device;
        p.n_threads = options.threads;
        let mut out = ptr::null_mut();
        check(unsafe { sys::lmrt_context_create(model.ptr(), &p, &mut out) })?;
        Ok(Context {
            r: Arc::new(ContextRef {
                ptr: out,
                freed: AtomicBool::new(false),
                model: model.r.clone(),
            }),
        })
    }

    /// Capabilities in this context's region, deployer policy applied.
    pub fn capabilities(&self) -> Result<Capabilities> {
        let mut c = std::mem::MaybeUninit::<sys::lmrt_capabilities>::zeroed();
        unsafe {
            sys::lmrt_capabilities_init(
                c.as_mut_ptr(),
                std::mem::size_of::<sys::lmrt_capabilities>(),
            )
        };
        check(unsafe { sys::lmrt_context_capabilities(self.r.ptr, c.as_mut_ptr()) })?;
        Ok(Capabilities::from_c(unsafe { &c.assume_init() }))
    }

    /// A new session on this context.
    pub fn session(&self, options: &SessionOptions) -> Result<Session> {
        Session::create(self, options, None)
    }
}

/// Settings of a [`Session`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SessionOptions {
    /// Context window; 0 = the model's, capped by the library.
    pub n_ctx: u32,
    /// Keep the logits of every fed position, not just the last.
    pub keep_all_logits: bool,
}

/// Sampler settings (lmrt_sampler_params); `Default` is the library's default.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sampler {
    /// 0 = greedy.
    pub temperature: f32,
    pub top_k: i32,
    pub top_p: f32,
    pub min_p: f32,
    pub repeat_penalty: f32,
    pub repeat_last_n: i32,
    pub frequency_penalty: f32,
    pub presence_penalty: f32,
    pub seed: u64,
}

impl Default for Sampler {
    fn default() -> Sampler {
        // Checked against lmrt_sampler_params_init on first use (abi.rs).
        Sampler {
            temperature: 0.8,
            top_k: 40,
            top_p: 0.95,
            min_p: 0.05,
            repeat_penalty: 1.0,
            repeat_last_n: 64,
            frequency_penalty: 0.0,
            presence_penalty: 0.0,
            seed: 0,
        }
    }
}

impl Sampler {
    fn to_c(self) -> sys::lmrt_sampler_params {
        let mut p = std::mem::MaybeUninit::<sys::lmrt_sampler_params>::zeroed();
        unsafe {
            sys::lmrt_sampler_params_init(
                p.as_mut_ptr(),
                std::mem::size_of::<sys::lmrt_sampler_params>(),
            )
        };
        let mut p = unsafe { p.assume_init() };
        p.temperature = self.temperature;
        p.top_k = self.top_k;
        p.top_p = self.top_p;
        p.min_p = self.min_p;
        p.repeat_penalty = self.repeat_penalty;
        p.repeat_last_n = self.repeat_last_n;
        p.frequency_penalty = self.frequency_penalty;
        p.presence_penalty = self.presence_penalty;
        p.seed = self.seed;
        p
    }
}

/// What [`Session::generate`] does: how many tokens, which stop strings, and
/// sampler settings that replace the session's for this and later calls.
#[derive(Clone, Debug, PartialEq)]
pub struct GenerateOptions {
    pub max_tokens: u32,
    pub stop: Vec<String>,
    pub temperature: Option<f32>,
    pub top_k: Option<i32>,
    pub top_p: Option<f32>,
    pub min_p: Option<f32>,
    pub repeat_penalty: Option<f32>,
    pub seed: Option<u64>,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            max_tokens: 256,
            stop: Vec::new(),
            temperature: None,
            top_k: None,
            top_p: None,
            min_p: None,
            repeat_penalty: None,
            seed: None,
        }
    }
}

impl GenerateOptions {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn max_tokens(mut self, n: u32) -> Self {
        self.max_tokens = n;
        self
    }
    pub fn stop(mut self, s: &str) -> Self {
        self.stop.push(s.to_string());
        self
    }
    pub fn temperature(mut self, t: f32) -> Self {
        self.temperature = Some(t);
        self
    }
    pub fn top_k(mut self, k: i32) -> Self {
        self.top_k = Some(k);
        self
    }
    pub fn top_p(mut self, p: f32) -> Self {
        self.top_p = Some(p);
        self
    }
    pub fn min_p(mut self, p: f32) -> Self {
        self.min_p = Some(p);
        self
    }
    pub fn repeat_penalty(mut self, r: f32) -> Self {
        self.repeat_penalty = Some(r);
        self
    }
    pub fn seed(mut self, s: u64) -> Self {
        self.seed = Some(s);
        self
    }
}

/// One generated token: id, the text it completes ("" while a multi-byte
/// character is pending, and for end-of-generation tokens), and whether it ends
/// generation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    pub id: i32,
    pub text: String,
    pub eog: bool,
}

/// Why a [`Generation`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    Eog,
    MaxTokens,
    StopString,
    /// [`Generation::close`] before the end.
    Closed,
    /// A call failed; the iterator returned the error.
    Error,
}

/// One conversation: token history, KV cache, sampler. Send, not Sync: one
/// thread at a time, as the C contract says. Dropping it frees it.
pub struct Session {
    ptr: *mut sys::lmrt_session,
    ctx: Arc<ContextRef>,
    /// The context made for this session by Model::session, shared with forks.
    _owned: Option<Arc<Context>>,
    sampler: Sampler,
    text_cap: usize,
}

// A session may move between threads; it is used by one at a time (&mut self
// for every change, and no Sync).
unsafe impl Send for Session {}

impl Drop for Session {
    fn drop(&mut self) {
        unsafe { sys::lmrt_session_free(self.ptr) };
    }
}

pub(crate) fn chat_arrays(messages: &[(&str, &str)]) -> Result<(Vec<CString>, Vec<CString>)> {
    let mut roles = Vec::with_capacity(messages.len());
    let mut contents = Vec::with_capacity(messages.len());
    for (r, c) in messages {
        roles.push(cstring(r, "role")?);
        contents.push(cstring(c, "content")?);
    }
    Ok((roles, contents))
}

impl Session {
    pub(crate) fn create(
        ctx: &Context,
        o: &SessionOptions,
        owned: Option<Arc<Context>>,
    ) -> Result<Session> {
        if o.n_ctx > i32::MAX as u32 {
            return Err(Error::invalid(format!("n_ctx {} is too large", o.n_ctx)));
        }
        let mut p = std::mem::MaybeUninit::<sys::lmrt_session_params>::zeroed();
        unsafe {
            sys::lmrt_session_params_init(
                p.as_mut_ptr(),
                std::mem::size_of::<sys::lmrt_session_params>(),
            )
        };
        let mut p = unsafe { p.assume_init() };
        p.n_ctx = o.n_ctx as i32;
        p.keep_all_logits = o.keep_all_logits;
        let mut out = ptr::null_mut();
        check(unsafe { sys::lmrt_session_create(ctx.r.ptr, &p, &mut out) })?;
        Ok(Session::wrap(out, ctx.r.clone(), owned))
    }

    fn wrap(
        ptr: *mut sys::lmrt_session,
        ctx: Arc<ContextRef>,
        owned: Option<Arc<Context>>,
    ) -> Session {
        Session {
            ptr,
            ctx,
            _owned: owned,
            sampler: Sampler::default(),
            text_cap: 256,
        }
    }

    /// A new session on `ctx` from [`Session::save`]'s blob. Another model's blob
    /// is `Status::Mismatch`, a damaged one `Status::Format`.
    pub fn restore(ctx: &Context, blob: &[u8]) -> Result<Session> {
        let mut out = ptr::null_mut();
        check(unsafe {
            sys::lmrt_session_restore(ctx.r.ptr, blob.as_ptr() as *const _, blob.len(), &mut out)
        })?;
        Ok(Session::wrap(out, ctx.r.clone(), None))
    }

    /// An independent copy of the whole state, on the same context.
    pub fn fork(&self) -> Result<Session> {
        let mut out = ptr::null_mut();
        check(unsafe { sys::lmrt_session_fork(self.ptr, &mut out) })?;
        let mut s = Session::wrap(out, self.ctx.clone(), self._owned.clone());
        s.sampler = self.sampler;
        Ok(s)
    }

    /// The whole state (tokens, KV cache, sampler) as a compressed blob.
    pub fn save(&self) -> Result<Vec<u8>> {
        let mut data: *mut std::os::raw::c_void = ptr::null_mut();
        let mut size = 0usize;
        check(unsafe { sys::lmrt_session_save(self.ptr, &mut data, &mut size) })?;
        let v = unsafe { std::slice::from_raw_parts(data as *const u8, size).to_vec() };
        unsafe { sys::lmrt_free(data) };
        Ok(v)
    }

    pub fn capabilities(&self) -> Result<Capabilities> {
        let mut c = std::mem::MaybeUninit::<sys::lmrt_capabilities>::zeroed();
        unsafe {
            sys::lmrt_capabilities_init(
                c.as_mut_ptr(),
                std::mem::size_of::<sys::lmrt_capabilities>(),
            )
        };
        check(unsafe { sys::lmrt_context_capabilities(self.ctx.ptr, c.as_mut_ptr()) })?;
        Ok(Capabilities::from_c(unsafe { &c.assume_init() }))
    }

    // -- feeding ------------------------------------------------------------------

    /// Tokenizes and feeds text, with BOS when the session is empty.
    pub fn feed(&mut self, text: &str) -> Result<()> {
        self.feed_with(text, true, false)
    }

    pub fn feed_with(&mut self, text: &str, bos: bool, special: bool) -> Result<()> {
        let t = cstring(text, "text")?;
        let flags = (if bos { sys::LMRT_TOKENIZE_ADD_BOS } else { 0 })
            | (if special {
                sys::LMRT_TOKENIZE_PARSE_SPECIAL
            } else {
                0
            });
        check(unsafe { sys::lmrt_session_feed_text(self.ptr, t.as_ptr(), flags) })
    }

    pub fn feed_tokens(&mut self, ids: &[i32]) -> Result<()> {
        check(unsafe { sys::lmrt_session_feed_tokens(self.ptr, ids.as_ptr(), ids.len()) })
    }

    /// Feeds [(role, content)] in the model's chat format.
    pub fn chat(&mut self, messages: &[(&str, &str)], add_assistant: bool) -> Result<()> {
        let (roles, contents) = chat_arrays(messages)?;
        let r: Vec<*const c_char> = roles.iter().map(|s| s.as_ptr()).collect();
        let c: Vec<*const c_char> = contents.iter().map(|s| s.as_ptr()).collect();
        check(unsafe {
            sys::lmrt_session_feed_chat(self.ptr, r.as_ptr(), c.as_ptr(), r.len(), add_assistant)
        })
    }

    pub fn feed_image_file(&mut self, path: impl AsRef<std::path::Path>) -> Result<()> {
        use std::os::unix::ffi::OsStrExt;
        let p = CString::new(path.as_ref().as_os_str().as_bytes())
            .map_err(|_| Error::invalid("path contains NUL"))?;
        check(unsafe { sys::lmrt_session_feed_image_file(self.ptr, p.as_ptr()) })
    }

    pub fn feed_image_encoded(&mut self, data: &[u8]) -> Result<()> {
        check(unsafe {
            sys::lmrt_session_feed_image_encoded(self.ptr, data.as_ptr() as *const _, data.len())
        })
    }

    /// Raw RGB8 rows, `row_stride` bytes apart.
    pub fn feed_image_rgb(
        &mut self,
        rgb: &[u8],
        width: u32,
        height: u32,
        row_stride: usize,
    ) -> Result<()> {
        let need = if height == 0 {
            0
        } else {
            row_stride
                .checked_mul(height as usize - 1)
                .and_then(|n| n.checked_add(3 * width as usize))
                .ok_or_else(|| Error::invalid("image too large"))?
        };
        if width > i32::MAX as u32 || height > i32::MAX as u32 || rgb.len() < need {
            return Err(Error::invalid(format!(
                "rgb holds {} bytes, too few for {}x{} with stride {}",
                rgb.len(),
                width,
                height,
                row_stride
            )));
        }
        check(unsafe {
            sys::lmrt_session_feed_image_rgb(
                self.ptr,
                rgb.as_ptr(),
                width as i32,
                height as i32,
                row_stride,
            )
        })
    }

    pub fn feed_audio_file(&mut self, path: impl AsRef<std::path::Path>) -> Result<()> {
        use std::os::unix::ffi::OsStrExt;
        let p = CString::new(path.as_ref().as_os_str().as_bytes())
            .map_err(|_| Error::invalid("path contains NUL"))?;
        check(unsafe { sys::lmrt_session_feed_audio_file(self.ptr, p.as_ptr()) })
    }

    pub fn feed_audio_encoded(&mut self, data: &[u8]) -> Result<()> {
        check(unsafe {
            sys::lmrt_session_feed_audio_encoded(self.ptr, data.as_ptr() as *const _, data.len())
        })
    }

    /// Mono float PCM at `sample_rate` Hz.
    pub fn feed_audio_pcm(&mut self, samples: &[f32], sample_rate: i32) -> Result<()> {
        check(unsafe {
            sys::lmrt_session_feed_audio_pcm(self.ptr, samples.as_ptr(), samples.len(), sample_rate)
        })
    }

    /// Forgets everything fed; keeps the sampler settings.
    pub fn reset(&mut self) -> Result<()> {
        check(unsafe { sys::lmrt_session_reset(self.ptr) })
    }

    pub fn n_tokens(&self) -> Result<i64> {
        let mut n = 0i64;
        check(unsafe { sys::lmrt_session_n_tokens(self.ptr, &mut n) })?;
        Ok(n)
    }

    // -- sampling and generation --------------------------------------------------

    /// Replaces the sampler settings (restarting the random stream at `seed`).
    pub fn set_sampler(&mut self, sampler: &Sampler) -> Result<()> {
        let p = sampler.to_c();
        check(unsafe { sys::lmrt_session_set_sampler(self.ptr, &p) })?;
        self.sampler = *sampler;
        Ok(())
    }

    pub fn sampler(&self) -> Sampler {
        self.sampler
    }

    fn step(&mut self) -> Result<(i32, Vec<u8>)> {
        loop {
            let mut buf = vec![0u8; self.text_cap];
            let (mut tok, mut n) = (0i32, 0usize);
            let st = unsafe {
                sys::lmrt_session_next_token(
                    self.ptr,
                    &mut tok,
                    buf.as_mut_ptr() as *mut c_char,
                    buf.len(),
                    &mut n,
                )
            };
            if st == sys::LMRT_E_BUFFER_TOO_SMALL && n > self.text_cap {
                self.text_cap = n; // nothing was sampled: ask again
                continue;
            }
            check(st)?;
            buf.truncate(n);
            return Ok((tok, buf));
        }
    }

    fn is_eog(&self, token: i32) -> Result<bool> {
        // The session keeps the model's memory alive; the flag keeps us from
        // calling through a model its owner has freed.
        let m = self.ctx.model.live()?;
        Ok(unsafe { sys::lmrt_model_token_is_eog(m, token) })
    }

    /// Samples one token from the current logits and feeds it.
    pub fn next_token(&mut self) -> Result<Token> {
        let (id, bytes) = self.step()?;
        let eog = bytes.is_empty() && self.is_eog(id)?;
        Ok(Token {
            id,
            text: String::from_utf8_lossy(&bytes).into_owned(),
            eog,
        })
    }

    /// Feeds `prompt` (if any) and returns an iterator over the generated text.
    /// Stops at an end-of-generation token, after `max_tokens`, or at the first
    /// stop string, whose text is not delivered (as lmrt_session_generate). With
    /// nothing fed and no prompt, generation starts from BOS.
    pub fn generate(
        &mut self,
        prompt: Option<&str>,
        o: &GenerateOptions,
    ) -> Result<Generation<'_>> {
        if o.max_tokens > i32::MAX as u32 {
            return Err(Error::invalid("max_tokens is too large"));
        }
        let mut stops = Vec::with_capacity(o.stop.len());
        for s in &o.stop {
            if s.is_empty() {
                return Err(Error::invalid("a stop string is empty"));
            }
            stops.push(cstring(s, "stop string")?.into_bytes());
        }
        let mut sampler = self.sampler;
        let mut changed = false;
        macro_rules! set {
            ($($f:ident),*) => { $( if let Some(v) = o.$f { sampler.$f = v; changed = true; } )* };
        }
        set!(temperature, top_k, top_p, min_p, repeat_penalty, seed);
        if changed {
            self.set_sampler(&sampler)?;
        }
        match prompt {
            Some(p) => self.feed(p)?,
            None if self.n_tokens()? == 0 => {
                let m = self.ctx.model.live()?;
                let mut bos = 0i32;
                let st = unsafe {
                    sys::lmrt_model_special_token(m, sys::LMRT_TOKEN_BOS as i32, &mut bos)
                };
                if st == sys::LMRT_E_NOT_FOUND {
                    return Err(Error::state(
                        "nothing has been fed and the model has no BOS token",
                    ));
                }
                check(st)?;
                self.feed_tokens(&[bos])?;
            }
            None => {}
        }
        Ok(Generation {
            session: self,
            left: o.max_tokens,
            stops,
            held: Vec::new(),
            pending: Vec::new(),
            tokens: Vec::new(),
            stop_reason: None,
            error: None,
        })
    }

    /// The logits of the last position (n_vocab floats), copied.
    pub fn logits(&self) -> Result<Vec<f32>> {
        let mut rows = self.logits_all()?;
        Ok(rows.pop().unwrap_or_default())
    }

    /// The logits of every fed position kept (all with keep_all_logits).
    pub fn logits_all(&self) -> Result<Vec<Vec<f32>>> {
        let mut p: *const f32 = ptr::null();
        let (mut rows, mut n_vocab) = (0i64, 0i32);
        check(unsafe { sys::lmrt_session_logits(self.ptr, &mut p, &mut rows, &mut n_vocab) })?;
        let n = n_vocab.max(0) as usize;
        let all = unsafe { std::slice::from_raw_parts(p, n * rows.max(0) as usize) };
        Ok(all.chunks(n.max(1)).map(|r| r.to_vec()).collect())
    }
}

/// The iterator [`Session::generate`] returns: text pieces as they become safe
/// to show. Text that could still become a stop string is held back until it
/// cannot (the same rule, on the same bytes, as lmrt_session_generate).
pub struct Generation<'s> {
    session: &'s mut Session,
    left: u32,
    stops: Vec<Vec<u8>>,
    held: Vec<u8>,
    pending: Vec<u8>,
    tokens: Vec<i32>,
    stop_reason: Option<StopReason>,
    error: Option<Error>,
}

impl<'s> Generation<'s> {
    /// Ids generated so far (including a final end-of-generation token).
    pub fn tokens(&self) -> &[i32] {
        &self.tokens
    }

    /// None while running.
    pub fn stop_reason(&self) -> Option<StopReason> {
        self.stop_reason
    }

    /// Stops early; the tokens generated so far stay in the session.
    pub fn close(&mut self) {
        if self.stop_reason.is_none() {
            self.stop_reason = Some(StopReason::Closed);
            self.held.clear();
        }
    }

    fn find_stop(&self) -> Option<usize> {
        self.stops.iter().filter_map(|s| find(&self.held, s)).min()
    }

    fn releasable(&self) -> usize {
        let mut keep = 0;
        for s in &self.stops {
            let mut k = s.len() - 1;
            while k > keep {
                if k <= self.held.len() && self.held.ends_with(&s[..k]) {
                    keep = k;
                    break;
                }
                k -= 1;
            }
        }
        self.held.len() - keep
    }

    /// Bytes to text, keeping an incomplete UTF-8 character for later.
    fn decode(&mut self, bytes: &[u8], last: bool) -> String {
        self.pending.extend_from_slice(bytes);
        let valid = match std::str::from_utf8(&self.pending) {
            Ok(_) => self.pending.len(),
            Err(e) if e.error_len().is_none() && !last => e.valid_up_to(),
            Err(_) => self.pending.len(),
        };
        let out = String::from_utf8_lossy(&self.pending[..valid]).into_owned();
        self.pending.drain(..valid);
        out
    }

    fn finish(&mut self, reason: StopReason) -> String {
        self.stop_reason = Some(reason);
        let held = std::mem::take(&mut self.held);
        self.decode(&held, true)
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.len() > hay.len() {
        return None;
    }
    (0..=hay.len() - needle.len()).find(|&i| &hay[i..i + needle.len()] == needle)
}

impl<'s> Iterator for Generation<'s> {
    type Item = Result<String>;

    fn next(&mut self) -> Option<Result<String>> {
        loop {
            if self.stop_reason.is_some() {
                return self.error.take().map(Err);
            }
            let piece = if self.left == 0 {
                self.finish(StopReason::MaxTokens)
            } else {
                match self.session.step() {
                    Err(e) => {
                        // As lmrt_session_generate: held text is delivered, then the error.
                        self.error = Some(e);
                        self.finish(StopReason::Error)
                    }
                    Ok((token, data)) => {
                        self.left -= 1;
                        self.tokens.push(token);
                        let eog = if data.is_empty() {
                            self.session.is_eog(token)
                        } else {
                            Ok(false)
                        };
                        match eog {
                            Err(e) => {
                                self.error = Some(e);
                                self.finish(StopReason::Error)
                            }
                            Ok(true) => self.finish(StopReason::Eog),
                            Ok(false) => {
                                self.held.extend_from_slice(&data);
                                if let Some(at) = self.find_stop() {
                                    self.held.truncate(at);
                                    self.finish(StopReason::StopString)
                                } else {
                                    let n = self.releasable();
                                    let out: Vec<u8> = self.held.drain(..n).collect();
                                    self.decode(&out, false)
                                }
                            }
                        }
                    }
                }
            };
            if !piece.is_empty() {
                return Some(Ok(piece));
            }
        }
    }
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("n_tokens", &self.n_tokens().ok())
            .finish()
    }
}
