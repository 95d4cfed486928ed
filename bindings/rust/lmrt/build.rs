//! build.rs - lets this crate's tests and examples run from a meson build tree:
//! when lmrt-sys linked a library found in a directory of its own choosing
//! (LMRT_LIB_DIR, LMRT_BUILD_DIR, a build*/ beside the sources) that directory
//! becomes an rpath. An installed lmrt (pkg-config or default path) needs none.
fn main() {
    println!("cargo:rerun-if-env-changed=DEP_LMRT_LIB_DIR");
    if let Ok(dir) = std::env::var("DEP_LMRT_LIB_DIR") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{}", dir);
    }
}
