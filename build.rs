//! Links the release binary's code in the order it runs (see
//! `server/link/README.md`): the functions executed at start-up first,
//! then those that serve requests, then the rest. Linux maps code in
//! 64 KiB blocks, so code that never runs then stays on disk instead of
//! sharing a block with start-up code: idle RSS drops by about 1.7 MiB.

use std::env;
use std::process::Command;

/// The first Rust release whose default linker on x86_64-unknown-linux-gnu
/// is the bundled `rust-lld`.
const LLD_BY_DEFAULT_SINCE: u32 = 90;

fn main() {
    let order = "server/link/symbol-order.txt";
    println!("cargo:rerun-if-changed={order}");
    for var in [
        "TORSION_NO_SYMBOL_ORDER",
        "TORSION_LINK_MAP",
        "RUSTC_LINKER",
        "CARGO_ENCODED_RUSTFLAGS",
    ] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    let release = env::var("PROFILE").is_ok_and(|p| p == "release");
    let opted_out = env::var_os("TORSION_NO_SYMBOL_ORDER").is_some();
    if !release || opted_out || !linker_is_bundled_lld() {
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

/// Whether the binary will be linked by the `rust-lld` that Rust bundles:
/// `--symbol-ordering-file` is an lld flag, and GNU ld (the default before
/// Rust 1.90, and on other targets) would fail the link on it. A linker
/// or linker flavour chosen by the user is left alone.
fn linker_is_bundled_lld() -> bool {
    let target = env::var("TARGET").unwrap_or_default();
    let flags = env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    target == "x86_64-unknown-linux-gnu"
        && env::var_os("RUSTC_LINKER").is_none()
        && !flags.contains("fuse-ld")
        && !flags.contains("linker")
        && rustc_minor().is_some_and(|minor| minor >= LLD_BY_DEFAULT_SINCE)
}

/// The minor version of the compiler cargo runs (`rustc 1.95.0 (...)`).
fn rustc_minor() -> Option<u32> {
    let rustc = env::var_os("RUSTC")?;
    let out = Command::new(rustc).arg("--version").output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let mut parts = text.split_whitespace().nth(1)?.split('.');
    let major: u32 = parts.next()?.parse().ok()?;
    let minor: u32 = parts.next()?.parse().ok()?;
    (major == 1).then_some(minor)
}
