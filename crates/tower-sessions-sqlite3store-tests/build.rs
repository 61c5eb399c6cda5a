//! Finds tower-sessions' conformance suite (`tests/common/mod.rs`) in the
//! cargo registry, where cargo puts it when it fetches our dev-dependency on
//! tower-sessions, so `tests/tower_sessions_suite.rs` can `include!` it
//! without a copy in this repository. The version is the one `Cargo.lock`
//! pins (0.15.0 when there is no lock file to read).
//!
//! Sets `cfg(tower_sessions_suite)` and `TOWER_SESSIONS_COMMON` (the file's
//! path) when found. `TOWER_SESSIONS_COMMON_RS` names the file directly
//! (vendored sources, an unusual cargo home).

use std::env;
use std::path::{Path, PathBuf};

/// The version to look for when `Cargo.lock` does not say.
const DEFAULT_VERSION: &str = "0.15.0";

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
    let suite = Path::new(&format!("tower-sessions-{}", locked_version()))
        .join("tests")
        .join("common")
        .join("mod.rs");
    cargo_homes()
        .into_iter()
        .find_map(|home| find_in_registry(&home.join("registry").join("src"), &suite))
}

/// The tower-sessions 0.15 version in the workspace's `Cargo.lock`.
fn locked_version() -> String {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let Some(lock) = manifest_dir
        .ancestors()
        .map(|dir| dir.join("Cargo.lock"))
        .find(|lock| lock.is_file())
    else {
        return DEFAULT_VERSION.into();
    };
    println!("cargo::rerun-if-changed={}", lock.display());
    let text = std::fs::read_to_string(&lock).unwrap_or_default();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if line.trim() == r#"name = "tower-sessions""# {
            let version = lines
                .next()
                .and_then(|l| l.trim().strip_prefix("version = \""))
                .and_then(|v| v.strip_suffix('"'));
            // Our dev-dependency is 0.15; another major may be in the lock too.
            if let Some(version) = version.filter(|v| v.starts_with("0.15.")) {
                return version.into();
            }
        }
    }
    DEFAULT_VERSION.into()
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
fn find_in_registry(src: &Path, suite: &Path) -> Option<PathBuf> {
    let mut registries: Vec<PathBuf> = std::fs::read_dir(src)
        .ok()?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .collect();
    registries.sort();
    registries
        .into_iter()
        .map(|registry| registry.join(suite))
        .find(|path| path.is_file())
}
