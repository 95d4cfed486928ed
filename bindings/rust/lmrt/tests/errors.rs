//! Bad input gives an lmrt::Error with the library's message, never a crash;
//! sessions used after their model or context were dropped fail with InvalidState.

mod common;

use lmrt::{Context, ContextOptions, GenerateOptions, Model, Session, SessionOptions, Status};

const PROMPT: &str = "Once upon a time";

#[test]
fn status_codes_are_stable() {
    let all = [
        (Status::InvalidArgument, -1),
        (Status::OutOfMemory, -2),
        (Status::Io, -3),
        (Status::Format, -4),
        (Status::Unsupported, -5),
        (Status::NotFound, -6),
        (Status::NotLicensed, -7),
        (Status::ContextFull, -8),
        (Status::Aborted, -9),
        (Status::BufferTooSmall, -10),
        (Status::Mismatch, -11),
        (Status::Backend, -12),
        (Status::InvalidState, -13),
        (Status::Internal, -14),
    ];
    for (s, code) in all {
        assert_eq!(s.code(), code);
        assert_eq!(Status::from_code(code), s);
        assert!(s.name().starts_with("LMRT_E_"), "{}", s.name());
    }
    assert_eq!(Status::from_code(-99), Status::Other(-99));
    assert_eq!(Status::Format.name(), "LMRT_E_FORMAT");
}

#[test]
fn bad_region_is_invalid_argument() {
    let m = Model::builtin().unwrap();
    for bad in ["DEU", "1A", "D", "d\u{20ac}"] {
        let e = m.capabilities(Some(bad)).unwrap_err();
        assert_eq!(e.status, Status::InvalidArgument, "{}", bad);
        assert!(e.message.contains("ISO 3166-1"), "{}", e.message);
    }
    assert_eq!(
        m.session(Some("DEU")).unwrap_err().status,
        Status::InvalidArgument
    );
    assert_eq!(
        m.capabilities(Some("D\0E")).unwrap_err().status,
        Status::InvalidArgument
    );
}

#[test]
fn bad_path_is_an_io_error() {
    let e = Model::load("/nonexistent/x.gguf").err().unwrap();
    assert_eq!(e.status, Status::Io);
    assert!(e.message.contains("/nonexistent/x.gguf"));
    assert!(e.to_string().starts_with("LMRT_E_IO: "));
    let e = Model::load_with_projector(common::stories(), Some("/nonexistent/mmproj.gguf"))
        .err()
        .unwrap();
    assert_eq!(e.status, Status::Io);
}

#[test]
fn bad_gguf_is_a_format_error() {
    let data = common::small_model(true);
    assert!(Model::from_bytes(data.clone()).is_ok());
    for n in [0, 3, 4, 20, data.len() / 2, data.len() - 1] {
        let f = common::TempFile::new(&format!("cut{}.gguf", n), &data[..n]);
        let e = Model::load(&f.0).err().unwrap();
        assert_eq!(e.status, Status::Format, "cut at {}: {}", n, e);
    }
    let mut bad = b"GGUF".to_vec();
    bad.extend_from_slice(&[0u8; 60]);
    assert_eq!(Model::from_bytes(bad).err().unwrap().status, Status::Format);
}

#[test]
fn bad_token_ids() {
    let m = Model::builtin().unwrap();
    let mut s = m.session(None).unwrap();
    for bad in [&[-1][..], &[512], &[1, 2, 1_000_000]] {
        let e = s.feed_tokens(bad).unwrap_err();
        assert_eq!(e.status, Status::InvalidArgument);
        assert!(e.message.contains("vocabulary"), "{}", e.message);
    }
    assert_eq!(
        s.feed_tokens(&[]).unwrap_err().status,
        Status::InvalidArgument
    );
    assert_eq!(s.n_tokens().unwrap(), 0);
    assert!(m.detokenize(&[1_000_000]).is_err());
}

#[test]
fn bad_arguments() {
    let m = Model::builtin().unwrap();
    let mut s = m.session(None).unwrap();
    assert_eq!(s.feed("a\0b").unwrap_err().status, Status::InvalidArgument);
    assert_eq!(
        s.generate(Some(PROMPT), &GenerateOptions::new().stop(""))
            .err()
            .unwrap()
            .status,
        Status::InvalidArgument
    );
    assert_eq!(
        s.chat(&[("user\0", "x")], true).unwrap_err().status,
        Status::InvalidArgument
    );
    assert_eq!(
        s.feed_image_rgb(&[0; 5], 2, 2, 6).unwrap_err().status,
        Status::InvalidArgument
    );
}

#[test]
fn next_token_needs_a_prompt() {
    let m = Model::builtin().unwrap();
    let mut s = m.session(None).unwrap();
    assert_eq!(s.next_token().unwrap_err().status, Status::InvalidState);
    assert_eq!(s.logits().unwrap_err().status, Status::InvalidState);
}

#[test]
fn context_full() {
    let m = Model::builtin().unwrap();
    let ctx = m.context(&ContextOptions::new()).unwrap();
    let mut s = ctx
        .session(&SessionOptions {
            n_ctx: 8,
            keep_all_logits: false,
        })
        .unwrap();
    let mut too_many = vec![1];
    too_many.extend([300; 8]);
    assert_eq!(
        s.feed_tokens(&too_many).unwrap_err().status,
        Status::ContextFull
    );
    s.feed_tokens(&[1, 300]).unwrap();
    let mut gen = s
        .generate(
            None,
            &GenerateOptions::new().max_tokens(20).temperature(0.0),
        )
        .unwrap();
    let results: Vec<_> = gen.by_ref().collect();
    assert_eq!(
        results.last().unwrap().as_ref().unwrap_err().status,
        Status::ContextFull
    );
    assert_eq!(gen.tokens().len(), 6);
    assert_eq!(gen.stop_reason(), Some(lmrt::StopReason::Error));
}

#[test]
fn session_after_model_dropped_is_invalid_state_not_a_crash() {
    let m = Model::builtin().unwrap();
    let mut s = m.session(Some("US")).unwrap();
    s.feed(PROMPT).unwrap();
    let fork = s.fork().unwrap();
    let ctx = Context::new(&m, &ContextOptions::new()).unwrap();
    drop(m);
    let st = |r: lmrt::Result<()>| r.unwrap_err().status;
    assert_eq!(st(s.feed(" more")), Status::InvalidState);
    assert_eq!(s.next_token().unwrap_err().status, Status::InvalidState);
    let opts = GenerateOptions::new().max_tokens(3);
    assert_eq!(
        s.generate(None, &opts).err().unwrap().status,
        Status::InvalidState
    );
    assert_eq!(
        s.generate(Some("x"), &opts).err().unwrap().status,
        Status::InvalidState
    );
    assert_eq!(fork.save().unwrap_err().status, Status::InvalidState);
    assert_eq!(s.logits().unwrap_err().status, Status::InvalidState);
    assert_eq!(
        ctx.session(&SessionOptions::default()).unwrap_err().status,
        Status::InvalidState
    );
    assert_eq!(ctx.capabilities().unwrap_err().status, Status::InvalidState);
    let e = s.n_tokens().unwrap_err();
    assert!(e.message.contains("model was freed"), "{}", e.message);
}

#[test]
fn session_after_context_dropped() {
    let m = Model::builtin().unwrap();
    let ctx = Context::new(&m, &ContextOptions::new().region("US")).unwrap();
    let mut s = ctx.session(&SessionOptions::default()).unwrap();
    s.feed(PROMPT).unwrap();
    drop(ctx);
    assert_eq!(s.next_token().unwrap_err().status, Status::InvalidState);
    assert_eq!(s.fork().unwrap_err().status, Status::InvalidState);
}

#[test]
fn owned_context_lives_while_a_fork_does() {
    let m = Model::builtin().unwrap();
    let mut s = m.session(None).unwrap();
    s.feed(PROMPT).unwrap();
    let mut f = s.fork().unwrap();
    drop(s);
    f.set_sampler(&lmrt::Sampler {
        temperature: 0.0,
        ..Default::default()
    })
    .unwrap();
    f.next_token().unwrap();
}

#[test]
fn save_restore_round_trip() {
    let m = Model::builtin().unwrap();
    let ctx = m.context(&ContextOptions::new().region("US")).unwrap();
    let mut s = ctx.session(&SessionOptions::default()).unwrap();
    s.feed(PROMPT).unwrap();
    s.set_sampler(&lmrt::Sampler {
        temperature: 0.0,
        ..Default::default()
    })
    .unwrap();
    let blob = s.save().unwrap();
    assert!(blob.len() > 16);
    let greedy = GenerateOptions::new().max_tokens(16).temperature(0.0);
    let first = s
        .generate(None, &greedy)
        .unwrap()
        .collect::<lmrt::Result<String>>()
        .unwrap();
    let mut r = Session::restore(&ctx, &blob).unwrap();
    assert_eq!(
        r.n_tokens().unwrap() as usize,
        m.tokenize(PROMPT, true, false).unwrap().len()
    );
    let again = r
        .generate(None, &greedy)
        .unwrap()
        .collect::<lmrt::Result<String>>()
        .unwrap();
    assert_eq!(first, again);
    let mut damaged = blob[..blob.len() - 7].to_vec();
    damaged.extend_from_slice(b"garbage");
    assert_eq!(
        Session::restore(&ctx, &damaged).unwrap_err().status,
        Status::Format
    );
    assert!(Session::restore(&ctx, &[]).is_err());
}

#[test]
fn restore_into_another_model_is_mismatch() {
    let mut data = std::fs::read(common::stories()).unwrap();
    let key = b"general.name";
    let at = data.windows(key.len()).position(|w| w == key).unwrap() + key.len() + 4 + 8;
    data[at] ^= 1; // another name, same shape: another model hash
    let other = Model::from_bytes(data).unwrap();
    let m = Model::builtin().unwrap();
    let mut s = m.session(None).unwrap();
    s.feed(PROMPT).unwrap();
    let blob = s.save().unwrap();
    let ctx = other.context(&ContextOptions::new()).unwrap();
    let e = Session::restore(&ctx, &blob).unwrap_err();
    assert_eq!(e.status, Status::Mismatch);
    assert!(e.message.contains("another model"), "{}", e.message);
}

#[test]
fn media_on_a_text_model_is_an_error_not_a_crash() {
    let m = Model::builtin().unwrap();
    let mut s = m.session(Some("US")).unwrap();
    s.feed(PROMPT).unwrap();
    assert!(s.feed_image_encoded(b"\x89PNG\r\n\x1a\n\0\0\0\0").is_err());
    assert!(s.feed_image_file("/nonexistent.png").is_err());
    assert!(s.feed_audio_pcm(&[0.0; 160], 16000).is_err());
}

#[test]
fn abi_mismatch_is_an_abi_error() {
    assert!(lmrt::check_library().is_ok());
    assert_eq!(lmrt::abi_version(), lmrt::ABI_VERSION);
    let e = lmrt::check_abi_against(99).unwrap_err();
    assert_eq!(e.status, Status::Abi);
    assert!(
        e.message.contains("ABI version 0") && e.message.contains("version 99"),
        "{}",
        e.message
    );
}

fn send<T: Send>() {}
fn sync<T: Sync>() {}

#[test]
fn thread_markers_follow_the_c_contract() {
    send::<Model>();
    sync::<Model>();
    send::<Context>();
    sync::<Context>();
    send::<Session>();
    // Session is not Sync: see the compile_fail doc test in lib.rs.
}
