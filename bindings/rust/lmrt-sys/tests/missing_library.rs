//! A missing library is a clear error, not a mystery: the crates link liblmrt at
//! build time, so build.rs is where it is looked for, and it says where it looked.
//! (At run time the dynamic loader reports a missing liblmrt.so.0 by name.)

use std::process::Command;

#[test]
fn build_fails_with_a_clear_message_when_lmrt_lib_dir_is_wrong() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let target = std::env::temp_dir().join(format!("lmrt-sys-missing-{}", std::process::id()));
    let out = Command::new(cargo)
        .args(["build", "--offline", "--quiet", "-p", "lmrt-sys"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("LMRT_LIB_DIR", "/nonexistent")
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .expect("cargo runs");
    let _ = std::fs::remove_dir_all(&target);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the build should fail");
    assert!(
        err.contains("liblmrt not found") && err.contains("LMRT_LIB_DIR=/nonexistent"),
        "{}",
        err
    );
}
