//! Runs the peers binary (bench/peers: tower-sessions-sqlx-store, which
//! links its own SQLite and so cannot live in this process) and reads its
//! results, JSON lines in the format of [`crate::workload::Line`].

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::workload::{Config, Line};
use crate::BoxError;

/// The `--peers` value that means "build bench/peers with cargo".
pub(crate) const BUILD: &str = "auto";

/// Runs the peers binary (`spec` is a path, or [`BUILD`]) with `cfg`, passing
/// each result line to `emit`.
pub(crate) fn run(spec: &str, cfg: &Config, emit: &mut dyn FnMut(Line)) -> Result<(), BoxError> {
    let exe = if spec == BUILD {
        build()?
    } else {
        PathBuf::from(spec)
    };
    eprintln!("running {}", exe.display());
    let mut child = Command::new(&exe)
        .arg("--config")
        .arg(serde_json::to_string(cfg)?)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", exe.display()))?;
    let stdout = child
        .stdout
        .take()
        .ok_or("no stdout from the peers binary")?;
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        match serde_json::from_str::<Line>(&line) {
            Ok(parsed) => emit(parsed),
            Err(_) => eprintln!("peers: {line}"),
        }
    }
    let status = child.wait()?;
    if !status.success() {
        return Err(format!("{} exited with {status}", exe.display()).into());
    }
    Ok(())
}

/// Builds bench/peers in release mode (a no-op when up to date) and returns
/// the binary's path, as cargo reports it.
fn build() -> Result<PathBuf, BoxError> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/peers/Cargo.toml");
    if !manifest.exists() {
        return Err(format!(
            "{} not found: run from the source tree, or pass --peers=PATH to a built bench-peers",
            manifest.display()
        )
        .into());
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!("building {} (release)", manifest.display());
    let output = Command::new(cargo)
        .args([
            "build",
            "--release",
            "--message-format=json-render-diagnostics",
        ])
        .arg("--manifest-path")
        .arg(&manifest)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()?;
    if !output.status.success() {
        return Err(format!("building bench/peers failed ({})", output.status).into());
    }
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|msg| {
            msg["reason"] == "compiler-artifact" && msg["target"]["name"] == "bench-peers"
        })
        .find_map(|msg| msg["executable"].as_str().map(PathBuf::from))
        .ok_or_else(|| "cargo built bench/peers but named no bench-peers executable".into())
}
