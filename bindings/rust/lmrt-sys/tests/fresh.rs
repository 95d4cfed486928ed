//! src/bindings.rs must be what regen-bindings.sh makes from include/lmrt.h now.
//! Skipped (with a note) when bindgen is not installed. The comparison ignores
//! layout: whitespace, and commas before a closing bracket (rustfmt adds those),
//! so a different rustfmt, or none, does not matter; any change of an item does.

use std::path::Path;
use std::process::Command;

fn normalize(s: &str) -> String {
    let squeezed: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    squeezed
        .replace(",)", ")")
        .replace(",]", "]")
        .replace(",}", "}")
        .replace(",>", ">")
}

#[test]
fn committed_bindings_match_the_header() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let header = dir.join("../../../include/lmrt.h");
    if !header.is_file() {
        eprintln!("skipped: no include/lmrt.h beside this crate");
        return;
    }
    let out = Command::new("sh")
        .arg(dir.join("regen-bindings.sh"))
        .arg("-")
        .output()
        .expect("sh runs");
    if out.status.code() == Some(77) {
        eprintln!("skipped: bindgen is not installed (apt-get install bindgen)");
        return;
    }
    assert!(
        out.status.success(),
        "regen-bindings.sh failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let fresh = String::from_utf8(out.stdout).unwrap();
    let committed = std::fs::read_to_string(dir.join("src/bindings.rs")).unwrap();
    let version = |s: &str| s.lines().next().unwrap_or("").to_string();
    if version(&fresh) != version(&committed) {
        eprintln!(
            "skipped: the installed bindgen ({}) is not the one that made src/bindings.rs \
                   ({})",
            version(&fresh),
            version(&committed)
        );
        return;
    }
    assert!(
        normalize(&fresh) == normalize(&committed),
        "src/bindings.rs is stale: include/lmrt.h changed. Run \
             bindings/rust/lmrt-sys/regen-bindings.sh and commit the result."
    );
}

#[test]
fn abi_version_matches_the_library() {
    assert_eq!(
        unsafe { lmrt_sys::lmrt_abi_version() },
        lmrt_sys::ABI_VERSION
    );
}
