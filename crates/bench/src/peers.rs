//! Drives the peers binary (bench/peers: tower-sessions-sqlx-store, which
//! links its own SQLite and so cannot live in this process), one process per
//! system: a [`Start`] line, then one JSON request a line on its stdin, one
//! [`Reply`] a line on its stdout.

use std::io::{BufRead, BufReader, Lines, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use crate::workload::{Cell, Line, Reply, Request, Runs, Start};
use crate::BoxError;

/// The `--peers` value that means "build bench/peers with cargo".
pub(crate) const BUILD: &str = "auto";

/// The peers binary, serving one system one cell at a time (see
/// [`crate::workload::serve`]), so the driver interleaves it with the
/// systems of this process.
#[derive(Debug)]
pub(crate) struct Remote {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Lines<BufReader<ChildStdout>>,
}

impl Remote {
    /// Starts the peers binary `exe` (see [`binary`]) serving `start`.
    pub(crate) fn start(exe: &Path, start: &Start) -> Result<Self, BoxError> {
        eprintln!("running {} for {}", exe.display(), start.system);
        let mut child = Command::new(exe)
            .arg("--serve")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", exe.display()))?;
        let stdin = child.stdin.take().ok_or("no stdin to the peers binary")?;
        let stdout = child
            .stdout
            .take()
            .ok_or("no stdout from the peers binary")?;
        let mut remote = Self {
            name: String::new(),
            child,
            stdin: Some(stdin),
            stdout: BufReader::new(stdout).lines(),
        };
        remote.send(&serde_json::to_string(start)?)?;
        match remote.receive()? {
            Reply::Ready { system } if system == start.system => remote.name = system,
            Reply::Failed(err) => return Err(err.into()),
            other => return Err(format!("peers: expected ready, got {other:?}").into()),
        }
        Ok(remote)
    }

    fn send(&mut self, line: &str) -> Result<(), BoxError> {
        let stdin = self
            .stdin
            .as_mut()
            .ok_or("the peers binary's stdin is closed")?;
        writeln!(stdin, "{line}")?;
        stdin.flush()?;
        Ok(())
    }

    /// The next reply; other lines are the binary's chatter, shown.
    fn receive(&mut self) -> Result<Reply, BoxError> {
        for line in &mut self.stdout {
            let line = line?;
            match serde_json::from_str::<Reply>(&line) {
                Ok(reply) => return Ok(reply),
                Err(_) => eprintln!("peers: {line}"),
            }
        }
        let status = self.child.wait()?;
        Err(format!("the peers binary ended ({status}) without a reply").into())
    }

    fn request(&mut self, request: &Request) -> Result<Vec<Line>, BoxError> {
        self.send(&serde_json::to_string(request)?)?;
        match self.receive()? {
            Reply::Done(lines) => Ok(lines),
            Reply::Failed(err) => Err(err.into()),
            Reply::Ready { .. } => Err("peers: unexpected second ready".into()),
        }
    }
}

impl Runs for Remote {
    fn name(&self) -> &str {
        &self.name
    }

    fn run(&mut self, cell: Cell, repeat: usize) -> Result<Vec<Line>, BoxError> {
        self.request(&Request::Run { cell, repeat })
    }

    fn finish_throughput(&mut self) -> Result<(), BoxError> {
        self.request(&Request::FinishThroughput).map(drop)
    }
}

impl Drop for Remote {
    fn drop(&mut self) {
        // End of input ends the binary; wait so no process outlives the run.
        drop(self.stdin.take());
        if let Err(err) = self.child.wait() {
            eprintln!("peers: waiting for the binary failed: {err}");
        }
    }
}

/// The peers binary for `spec`: a path, or [`BUILD`] to build it.
pub(crate) fn binary(spec: &str) -> Result<PathBuf, BoxError> {
    if spec == BUILD {
        build()
    } else {
        Ok(PathBuf::from(spec))
    }
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
