//! What the tests that run the `vnn` binary share (included with
//! `#[path = "support/cli.rs"] mod cli_support;` by tests that need the
//! `cli` feature). Each test file uses part of it.
#![allow(dead_code)]

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs the `vnn` binary with `args` and gives its output.
pub fn vnn(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vnn"))
        .args(args)
        .output()
        .expect("the vnn binary runs")
}

/// A fresh, empty folder `group/name` under the target's test folder.
pub fn scratch(group: &str, name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(group)
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The last line of stdout of a run that succeeded, parsed as the one JSON
/// object `--json` promises.
pub fn last_json(out: &Output) -> Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "vnn failed: {stderr}");
    let line = stdout
        .lines()
        .last()
        .unwrap_or_else(|| panic!("no stdout; stderr: {stderr}"));
    serde_json::from_str(line).unwrap_or_else(|e| panic!("last line is not JSON ({e}): {line}"))
}
