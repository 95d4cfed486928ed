//! What the tests share: paths into the source and build trees, and a small
//! GGUF writer for hand-made models (the twin of scripts/lmrt_gguf.py's Writer,
//! enough for tests/examples' small_model()).
#![allow(dead_code)]

use std::path::PathBuf;

pub fn source_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../..")
        .canonicalize()
        .unwrap()
}

pub fn stories() -> PathBuf {
    source_root().join("lib/model/builtin/stories260K.gguf")
}

/// The meson build directory whose examples the binding is compared with
/// ($LMRT_BUILD_DIR), or None (the comparison tests then say so and pass).
pub fn build_dir() -> Option<PathBuf> {
    let d = PathBuf::from(std::env::var_os("LMRT_BUILD_DIR")?);
    if d.join("examples/lmrt-generate").is_file() {
        Some(d)
    } else {
        None
    }
}

pub fn run_example(args: &[&str]) -> Option<String> {
    let d = match build_dir() {
        Some(d) => d,
        None => {
            eprintln!("skipped: set LMRT_BUILD_DIR to a meson build directory to compare with lmrt-generate");
            return None;
        }
    };
    let out = std::process::Command::new(d.join("examples/lmrt-generate"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8(out.stdout).unwrap())
}

const STRING: u32 = 8;
const ARRAY: u32 = 9;
const UINT32: u32 = 4;
const FLOAT32: u32 = 6;

fn gstr(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// tests/examples/test_examples.py small_model(multimodal) as bytes.
pub fn small_model(multimodal: bool) -> Vec<u8> {
    // (name, type number, dims, data bytes)
    let mut tensors: Vec<(&str, u32, Vec<u64>, usize)> = vec![
        ("token_embd.weight", 0, vec![32, 4], 32 * 4 * 4),
        ("blk.0.attn_q.weight", 8, vec![32, 32], 32 * 34),
    ];
    if multimodal {
        tensors.push(("v.patch_embd.weight", 1, vec![32, 2], 32 * 2 * 2));
        tensors.push(("a.conv1d.1.weight", 1, vec![32, 2], 32 * 2 * 2));
    }
    let mut kv = Vec::new();
    let mut n_kv = 0u64;
    let mut add = |kv: &mut Vec<u8>, key: &str, f: &dyn Fn(&mut Vec<u8>)| {
        gstr(kv, key);
        f(kv);
        n_kv += 1;
    };
    add(&mut kv, "general.architecture", &|o| {
        o.extend_from_slice(&STRING.to_le_bytes());
        gstr(o, "llama")
    });
    add(&mut kv, "general.name", &|o| {
        o.extend_from_slice(&STRING.to_le_bytes());
        gstr(o, "tiny")
    });
    add(&mut kv, "llama.block_count", &|o| {
        o.extend_from_slice(&UINT32.to_le_bytes());
        o.extend_from_slice(&1u32.to_le_bytes())
    });
    add(&mut kv, "llama.embedding_length", &|o| {
        o.extend_from_slice(&UINT32.to_le_bytes());
        o.extend_from_slice(&32u32.to_le_bytes())
    });
    add(&mut kv, "tokenizer.ggml.tokens", &|o| {
        o.extend_from_slice(&ARRAY.to_le_bytes());
        o.extend_from_slice(&STRING.to_le_bytes());
        o.extend_from_slice(&4u64.to_le_bytes());
        for t in ["<unk>", "<s>", "</s>", "a"] {
            gstr(o, t)
        }
    });
    add(&mut kv, "tokenizer.ggml.scores", &|o| {
        o.extend_from_slice(&ARRAY.to_le_bytes());
        o.extend_from_slice(&FLOAT32.to_le_bytes());
        o.extend_from_slice(&4u64.to_le_bytes());
        for s in [0.0f32, 0.0, 0.0, -1.5] {
            o.extend_from_slice(&s.to_le_bytes())
        }
    });
    let mut out = b"GGUF".to_vec();
    out.extend_from_slice(&3u32.to_le_bytes());
    out.extend_from_slice(&(tensors.len() as u64).to_le_bytes());
    out.extend_from_slice(&n_kv.to_le_bytes());
    out.extend_from_slice(&kv);
    let mut offset = 0u64;
    for (name, ty, dims, n) in &tensors {
        offset = (offset + 31) / 32 * 32;
        gstr(&mut out, name);
        out.extend_from_slice(&(dims.len() as u32).to_le_bytes());
        for d in dims {
            out.extend_from_slice(&d.to_le_bytes())
        }
        out.extend_from_slice(&ty.to_le_bytes());
        out.extend_from_slice(&offset.to_le_bytes());
        offset += *n as u64;
    }
    while out.len() % 32 != 0 {
        out.push(0)
    }
    let data_start = out.len();
    let mut offset = 0usize;
    for (_, _, _, n) in &tensors {
        offset = (offset + 31) / 32 * 32;
        out.resize(data_start + offset + n, 0);
        offset += n;
    }
    out
}

/// A scratch file that is removed on drop.
pub struct TempFile(pub PathBuf);

impl TempFile {
    pub fn new(name: &str, data: &[u8]) -> TempFile {
        let dir = std::env::temp_dir().join(format!("lmrt-rust-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join(name);
        std::fs::write(&p, data).unwrap();
        TempFile(p)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
