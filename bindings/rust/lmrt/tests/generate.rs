//! Generation through the binding equals the C library's: the lmrt-generate
//! example, the golden greedy run, and lmrt_session_generate's stop strings.

mod common;

use std::os::raw::{c_char, c_void};

use lmrt::{GenerateOptions, Model, Sampler, StopReason};

const PROMPT: &str = "Once upon a time";

fn ids(s: &str) -> Vec<i32> {
    s.split_whitespace().map(|t| t.parse().unwrap()).collect()
}

#[test]
fn readme_example() {
    let model = Model::builtin().unwrap();
    let mut s = model.session(Some("US")).unwrap();
    let opts = GenerateOptions::new().max_tokens(64).temperature(0.0);
    let text = s
        .generate(Some(PROMPT), &opts)
        .unwrap()
        .collect::<lmrt::Result<String>>()
        .unwrap();
    assert!(
        text.starts_with(", there was a little girl named Lily."),
        "{:?}",
        text
    );
}

#[test]
fn greedy_ids_and_text_equal_the_c_example() {
    let model = Model::builtin().unwrap();
    let mut s = model.session(Some("US")).unwrap();
    let mut gen = s
        .generate(
            Some(PROMPT),
            &GenerateOptions::new().max_tokens(32).temperature(0.0),
        )
        .unwrap();
    let text = gen.by_ref().collect::<lmrt::Result<String>>().unwrap();
    let tokens = gen.tokens().to_vec();
    assert_eq!(gen.stop_reason(), Some(StopReason::MaxTokens));
    assert_eq!(tokens.len(), 32);
    if let Some(c_ids) = common::run_example(&["--temp", "0", "-n", "32", "-p", PROMPT, "--ids"]) {
        assert_eq!(tokens, ids(&c_ids));
        let c_text = common::run_example(&["--temp", "0", "-n", "32", "-p", PROMPT]).unwrap();
        assert_eq!(format!("{}{}\n", PROMPT, text), c_text);
    }
    assert_eq!(
        s.n_tokens().unwrap() as usize,
        model.tokenize(PROMPT, true, false).unwrap().len() + 32
    );
}

#[test]
fn seeded_sampling_equals_the_c_example() {
    let model = Model::builtin().unwrap();
    let mut s = model.session(None).unwrap();
    let opts = GenerateOptions::new()
        .max_tokens(24)
        .temperature(0.8)
        .seed(42)
        .top_k(20);
    let mut gen = s.generate(Some(PROMPT), &opts).unwrap();
    for p in gen.by_ref() {
        p.unwrap();
    }
    let tokens = gen.tokens().to_vec();
    if let Some(c_ids) = common::run_example(&[
        "--temp", "0.8", "--seed", "42", "-n", "24", "-p", PROMPT, "--ids", "--top-k", "20",
    ]) {
        assert_eq!(tokens, ids(&c_ids));
    }
    assert_eq!(s.sampler().top_k, 20);
    assert_eq!(s.sampler().seed, 42);
}

#[test]
fn greedy_from_bos_is_the_golden_run() {
    let json =
        std::fs::read_to_string(common::source_root().join("tests/data/greedy_t0_n256.ids.json"))
            .unwrap();
    let list = &json[json.find("\"generated_ids\"").unwrap()..];
    let list = &list[list.find('[').unwrap() + 1..list.find(']').unwrap()];
    let golden: Vec<i32> = list.split(',').map(|t| t.trim().parse().unwrap()).collect();
    let model = Model::builtin().unwrap();
    let mut s = model.session(None).unwrap();
    let opts = GenerateOptions::new()
        .max_tokens(golden.len() as u32)
        .temperature(0.0);
    let mut gen = s.generate(None, &opts).unwrap(); // nothing fed: starts at BOS
    let text = gen.by_ref().collect::<lmrt::Result<String>>().unwrap();
    let n = gen.tokens().len().min(golden.len());
    assert!(n > 0);
    assert_eq!(&gen.tokens()[..n], &golden[..n]);
    let want = std::fs::read_to_string(common::source_root().join("tests/data/greedy_t0_n256.txt"))
        .unwrap();
    let ours: String = text.trim_start_matches(' ').chars().take(400).collect();
    assert!(want.starts_with(&ours));
    if let Some(c_text) = common::run_example(&["--temp", "0", "-n", &golden.len().to_string()]) {
        assert_eq!(format!("{}\n", text), c_text);
    }
}

#[test]
fn next_token_steps_like_generate() {
    let model = Model::builtin().unwrap();
    let mut a = model.session(None).unwrap();
    a.feed(PROMPT).unwrap();
    a.set_sampler(&Sampler {
        temperature: 0.0,
        ..Sampler::default()
    })
    .unwrap();
    let steps: Vec<_> = (0..10).map(|_| a.next_token().unwrap()).collect();
    let mut b = model.session(None).unwrap();
    let mut gen = b
        .generate(
            Some(PROMPT),
            &GenerateOptions::new().max_tokens(10).temperature(0.0),
        )
        .unwrap();
    let text = gen.by_ref().collect::<lmrt::Result<String>>().unwrap();
    assert_eq!(steps.iter().map(|t| t.id).collect::<Vec<_>>(), gen.tokens());
    assert_eq!(
        steps.iter().map(|t| t.text.as_str()).collect::<String>(),
        text
    );
    assert!(steps.iter().all(|t| !t.eog));
}

#[test]
fn logits_are_the_last_row_and_argmax_is_greedy() {
    let model = Model::builtin().unwrap();
    let ctx = model.context(&lmrt::ContextOptions::new()).unwrap();
    let mut s = ctx
        .session(&lmrt::SessionOptions {
            n_ctx: 0,
            keep_all_logits: true,
        })
        .unwrap();
    s.feed(PROMPT).unwrap();
    let rows = s.logits_all().unwrap();
    assert_eq!(
        rows.len(),
        model.tokenize(PROMPT, true, false).unwrap().len()
    );
    let last = s.logits().unwrap();
    assert_eq!(last.len() as i32, model.info().unwrap().n_vocab);
    assert_eq!(&last, rows.last().unwrap());
    let best = (0..last.len())
        .max_by(|&i, &j| last[i].partial_cmp(&last[j]).unwrap())
        .unwrap();
    s.set_sampler(&Sampler {
        temperature: 0.0,
        ..Sampler::default()
    })
    .unwrap();
    assert_eq!(s.next_token().unwrap().id as usize, best);
}

struct Collected {
    text: Vec<u8>,
}

unsafe extern "C" fn on_token(
    user: *mut c_void,
    _token: i32,
    text: *const c_char,
    len: usize,
) -> bool {
    let c = &mut *(user as *mut Collected);
    if len > 0 {
        c.text
            .extend_from_slice(std::slice::from_raw_parts(text as *const u8, len));
    }
    true
}

/// lmrt_session_generate called directly (raw C API, its own copy of the
/// built-in model) on a session fed like ours: (text, stop reason, n_tokens).
fn c_generate(stops: &[&str], max_tokens: i32) -> (String, i32, i64) {
    use lmrt::sys;
    let (mut m, mut ctx, mut s) = (
        std::ptr::null_mut(),
        std::ptr::null_mut(),
        std::ptr::null_mut(),
    );
    unsafe {
        assert_eq!(sys::lmrt_model_load_builtin(std::ptr::null(), &mut m), 0);
        assert_eq!(sys::lmrt_context_create(m, std::ptr::null(), &mut ctx), 0);
        assert_eq!(sys::lmrt_session_create(ctx, std::ptr::null(), &mut s), 0);
        let p = std::ffi::CString::new(PROMPT).unwrap();
        assert_eq!(
            sys::lmrt_session_feed_text(s, p.as_ptr(), sys::LMRT_TOKENIZE_ADD_BOS),
            0
        );
        let mut sp = std::mem::MaybeUninit::<sys::lmrt_sampler_params>::zeroed();
        sys::lmrt_sampler_params_init(
            sp.as_mut_ptr(),
            std::mem::size_of::<sys::lmrt_sampler_params>(),
        );
        let mut sp = sp.assume_init();
        sp.temperature = 0.0;
        assert_eq!(sys::lmrt_session_set_sampler(s, &sp), 0);
        let cs: Vec<std::ffi::CString> = stops
            .iter()
            .map(|x| std::ffi::CString::new(*x).unwrap())
            .collect();
        let ptrs: Vec<*const c_char> = cs.iter().map(|c| c.as_ptr()).collect();
        let mut collected = Collected { text: Vec::new() };
        let mut gp = std::mem::MaybeUninit::<sys::lmrt_generate_params>::zeroed();
        sys::lmrt_generate_params_init(
            gp.as_mut_ptr(),
            std::mem::size_of::<sys::lmrt_generate_params>(),
        );
        let mut gp = gp.assume_init();
        gp.max_tokens = max_tokens;
        gp.stop = ptrs.as_ptr();
        gp.n_stop = ptrs.len();
        gp.on_token = Some(on_token);
        gp.user = &mut collected as *mut Collected as *mut c_void;
        let mut reason = 0i32;
        assert_eq!(sys::lmrt_session_generate(s, &gp, &mut reason), 0);
        let mut n = 0i64;
        sys::lmrt_session_n_tokens(s, &mut n);
        sys::lmrt_session_free(s);
        sys::lmrt_context_free(ctx);
        sys::lmrt_model_free(m);
        (String::from_utf8(collected.text).unwrap(), reason, n)
    }
}

#[test]
fn stop_strings_behave_like_the_c_api() {
    let model = Model::builtin().unwrap();
    let cases: [&[&str]; 7] = [
        &["Lily"],
        &[", "],
        &["girl named", "park"],
        &["zzz"],
        &["e"],
        &["the park. One", "ball"],
        &["...", "She"],
    ];
    for stops in cases {
        let (want, reason, n) = c_generate(stops, 48);
        let mut s = model.session(None).unwrap();
        let mut opts = GenerateOptions::new().max_tokens(48).temperature(0.0);
        for st in stops {
            opts = opts.stop(st);
        }
        let mut gen = s.generate(Some(PROMPT), &opts).unwrap();
        let got = gen.by_ref().collect::<lmrt::Result<String>>().unwrap();
        assert_eq!(got, want, "stops {:?}", stops);
        let ours = match gen.stop_reason().unwrap() {
            StopReason::Eog => 1,
            StopReason::MaxTokens => 2,
            StopReason::StopString => 3,
            r => panic!("{:?}", r),
        };
        assert_eq!(ours, reason, "stops {:?}", stops);
        drop(gen);
        assert_eq!(s.n_tokens().unwrap(), n, "stops {:?}", stops);
    }
}

#[test]
fn chat_feeds_the_chat_format() {
    let model = Model::builtin().unwrap();
    let rendered = model.chat_format(&[("user", "Hi")], true).unwrap();
    assert!(rendered.contains("Hi"));
    let mut s = model.session(None).unwrap();
    s.chat(&[("user", "Hi")], true).unwrap();
    assert!(s.n_tokens().unwrap() > 0);
    let mut g = s
        .generate(None, &GenerateOptions::new().max_tokens(4).temperature(0.0))
        .unwrap();
    for p in g.by_ref() {
        p.unwrap();
    }
    assert!(!g.tokens().is_empty());
}

#[test]
fn generation_close_stops_early() {
    let model = Model::builtin().unwrap();
    let mut s = model.session(None).unwrap();
    let mut gen = s
        .generate(
            Some(PROMPT),
            &GenerateOptions::new().max_tokens(100).temperature(0.0),
        )
        .unwrap();
    gen.next().unwrap().unwrap();
    gen.close();
    assert_eq!(gen.stop_reason(), Some(StopReason::Closed));
    assert!(gen.next().is_none());
}

#[test]
fn sessions_run_in_parallel_threads_on_one_model() {
    let model = std::sync::Arc::new(Model::builtin().unwrap());
    let ctx = std::sync::Arc::new(
        model
            .context(&lmrt::ContextOptions::new().threads(1))
            .unwrap(),
    );
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let ctx = ctx.clone();
            std::thread::spawn(move || {
                let mut s = ctx.session(&lmrt::SessionOptions::default()).unwrap();
                let g = s
                    .generate(
                        Some(PROMPT),
                        &GenerateOptions::new().max_tokens(16).temperature(0.0),
                    )
                    .unwrap();
                g.collect::<lmrt::Result<String>>().unwrap()
            })
        })
        .collect();
    let texts: Vec<String> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert!(texts.iter().all(|t| t == &texts[0]));
    // A session moves to another thread (Send).
    let mut s = model.session(None).unwrap();
    s.feed(PROMPT).unwrap();
    let n = std::thread::spawn(move || s.n_tokens().unwrap())
        .join()
        .unwrap();
    assert!(n > 0);
}
