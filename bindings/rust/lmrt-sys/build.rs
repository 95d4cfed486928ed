//! build.rs - finds liblmrt to link against. The bindings themselves are not
//! generated here: src/bindings.rs is committed (regen-bindings.sh), so building
//! needs neither libclang nor any crate.
//!
//! Where it looks, in order:
//!   1. $LMRT_LIB_DIR: a directory holding liblmrt.so (when set, nothing else);
//!   2. $LMRT_BUILD_DIR: a meson build directory (its lib/);
//!   3. pkg-config lmrt (an installed lmrt), when pkg-config is present;
//!   4. a meson build directory beside the source tree: walking up from this
//!      crate, the first directory with build*/lib/liblmrt.so (the newest);
//!   5. the linker's default search path (-llmrt).
//!
//! For 1, 2 and 4 the directory is passed on to dependents as DEP_LMRT_LIB_DIR,
//! which the lmrt crate turns into an rpath for its tests and examples.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

fn has_lib(dir: &Path) -> bool {
    dir.join("liblmrt.so").is_file()
}

fn from_build_tree(start: &Path) -> Option<PathBuf> {
    let mut dir = Some(start);
    while let Some(d) = dir {
        let mut found: Vec<(std::time::SystemTime, PathBuf)> = Vec::new();
        if let Ok(entries) = std::fs::read_dir(d) {
            for e in entries.flatten() {
                let name = e.file_name();
                if !name.to_string_lossy().starts_with("build") {
                    continue;
                }
                let lib = e.path().join("lib");
                if has_lib(&lib) {
                    let t = std::fs::metadata(lib.join("liblmrt.so"))
                        .and_then(|m| m.modified())
                        .unwrap_or(std::time::UNIX_EPOCH);
                    found.push((t, lib));
                }
            }
        }
        if !found.is_empty() {
            found.sort();
            return found.pop().map(|(_, p)| p);
        }
        dir = d.parent();
    }
    None
}

fn pkg_config() -> Option<Vec<String>> {
    let out = Command::new("pkg-config")
        .args(["--libs", "lmrt"])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    Some(
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .map(String::from)
            .collect(),
    )
}

fn main() {
    for var in ["LMRT_LIB_DIR", "LMRT_BUILD_DIR", "PKG_CONFIG_PATH"] {
        println!("cargo:rerun-if-env-changed={}", var);
    }
    println!("cargo:rerun-if-changed=build.rs");
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let mut tried = Vec::new();

    let dir = if let Ok(d) = env::var("LMRT_LIB_DIR") {
        let d = PathBuf::from(d);
        if !has_lib(&d) {
            panic!(
                "\n\nliblmrt not found: LMRT_LIB_DIR={} holds no liblmrt.so.\n\
                 Point LMRT_LIB_DIR at the directory of liblmrt.so, or LMRT_BUILD_DIR at a \
                 meson build directory.\n\n",
                d.display()
            );
        }
        Some(d)
    } else {
        let mut dir = None;
        if let Ok(b) = env::var("LMRT_BUILD_DIR") {
            let d = PathBuf::from(b).join("lib");
            if has_lib(&d) {
                dir = Some(d);
            } else {
                tried.push(format!("LMRT_BUILD_DIR: {} (no liblmrt.so)", d.display()));
            }
        }
        if dir.is_none() {
            if let Some(flags) = pkg_config() {
                for f in &flags {
                    if let Some(p) = f.strip_prefix("-L") {
                        println!("cargo:rustc-link-search=native={}", p);
                    } else if let Some(l) = f.strip_prefix("-l") {
                        println!("cargo:rustc-link-lib=dylib={}", l);
                    }
                }
                return;
            }
            tried.push("pkg-config lmrt (not found)".to_string());
            dir = from_build_tree(&manifest);
            if dir.is_none() {
                tried.push(format!("build*/lib above {} (none)", manifest.display()));
            }
        }
        dir
    };

    match dir {
        Some(d) => {
            let d = d.canonicalize().unwrap_or(d);
            println!("cargo:rustc-link-search=native={}", d.display());
            println!("cargo:lib_dir={}", d.display());
            // For this crate's own tests (the layout tests); dependents get it
            // through DEP_LMRT_LIB_DIR (see lmrt/build.rs).
            println!("cargo:rustc-link-arg=-Wl,-rpath,{}", d.display());
            println!("cargo:rerun-if-changed={}", d.join("liblmrt.so").display());
        }
        None => println!(
            "cargo:warning=liblmrt: looked in {}; falling back to the linker's default path",
            tried.join("; ")
        ),
    }
    println!("cargo:rustc-link-lib=dylib=lmrt");
}
