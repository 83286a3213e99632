//! Links the release binary's code in the order it runs (see
//! `server/link/README.md`): the functions executed at start-up first,
//! then those that serve requests, then the rest. Linux maps code in
//! 64 KiB blocks, so code that never runs then stays on disk instead of
//! sharing a block with start-up code: idle RSS drops by about 1.7 MiB.

use std::env;

fn main() {
    let order = "server/link/symbol-order.txt";
    println!("cargo:rerun-if-changed={order}");
    println!("cargo:rerun-if-env-changed=TORSION_NO_SYMBOL_ORDER");
    println!("cargo:rerun-if-env-changed=TORSION_LINK_MAP");
    // rust-lld is the default linker only on this target (Rust 1.90+), and
    // `--symbol-ordering-file` is an lld flag: GNU ld would reject it.
    let target = env::var("TARGET").unwrap_or_default();
    let release = env::var("PROFILE").is_ok_and(|p| p == "release");
    let opted_out = env::var_os("TORSION_NO_SYMBOL_ORDER").is_some();
    if target != "x86_64-unknown-linux-gnu" || !release || opted_out {
        return;
    }
    let dir = env::var("CARGO_MANIFEST_DIR").unwrap_or_default();
    println!("cargo:rustc-link-arg-bins=-Wl,--symbol-ordering-file={dir}/{order}");
    // Symbols the list names that this build does not have (another
    // compiler, another dependency version) are skipped, not errors.
    println!("cargo:rustc-link-arg-bins=-Wl,--no-warn-symbol-ordering");
    // `server/link/regenerate.sh` asks for the link map: it names the
    // functions at the addresses a profile of this very build executed.
    if let Ok(map) = env::var("TORSION_LINK_MAP") {
        println!("cargo:rustc-link-arg-bins=-Wl,-Map={map}");
        println!("cargo:rustc-link-arg-bins=-Wl,--no-demangle");
    }
}
