//! Finds tower-sessions 0.15.0's conformance suite (`tests/common/mod.rs`) in
//! the cargo registry, where cargo puts it when it fetches our
//! dev-dependency on tower-sessions, so `tests/tower_sessions_suite.rs` can
//! `include!` it without a copy in this repository.
//!
//! Sets `cfg(tower_sessions_suite)` and `TOWER_SESSIONS_COMMON` (the file's
//! path) when found. `TOWER_SESSIONS_COMMON_RS` names the file directly
//! (vendored sources, an unusual cargo home).

use std::env;
use std::path::{Path, PathBuf};

const SUITE: &str = "tower-sessions-0.15.0/tests/common/mod.rs";

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=TOWER_SESSIONS_COMMON_RS");
    println!("cargo::rerun-if-env-changed=CARGO_HOME");
    println!("cargo::rustc-check-cfg=cfg(tower_sessions_suite)");
    if let Some(path) = find_suite() {
        println!("cargo::rerun-if-changed={}", path.display());
        println!("cargo::rustc-cfg=tower_sessions_suite");
        println!("cargo::rustc-env=TOWER_SESSIONS_COMMON={}", path.display());
    }
}

fn find_suite() -> Option<PathBuf> {
    if let Some(path) = env::var_os("TOWER_SESSIONS_COMMON_RS") {
        return Some(PathBuf::from(path)).filter(|p| p.is_file());
    }
    cargo_homes()
        .into_iter()
        .find_map(|home| find_in_registry(&home.join("registry").join("src")))
}

/// Where cargo may keep its registry: `CARGO_HOME`, the home of the cargo
/// running this build (`<home>/bin/cargo`), then `~/.cargo`.
fn cargo_homes() -> Vec<PathBuf> {
    let mut homes = Vec::new();
    if let Some(home) = env::var_os("CARGO_HOME") {
        homes.push(PathBuf::from(home));
    }
    if let Some(cargo) = env::var_os("CARGO") {
        if let Some(home) = Path::new(&cargo).parent().and_then(Path::parent) {
            homes.push(home.to_path_buf());
        }
    }
    if let Some(home) = env::var_os("HOME").or_else(|| env::var_os("USERPROFILE")) {
        homes.push(PathBuf::from(home).join(".cargo"));
    }
    homes
}

/// `registry/src` holds one directory per registry (`index.crates.io-<hash>`).
fn find_in_registry(src: &Path) -> Option<PathBuf> {
    let mut registries: Vec<PathBuf> = std::fs::read_dir(src)
        .ok()?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .collect();
    registries.sort();
    registries
        .into_iter()
        .map(|registry| registry.join(SUITE))
        .find(|path| path.is_file())
}
