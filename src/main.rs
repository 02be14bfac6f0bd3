//! The `vnn` command line: train, predict, eval and bench.

mod cli;

use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    match cli::run() {
        Ok(code) => code,
        Err(e) => {
            // Best effort: with stderr closed or full, only the code remains.
            let _ = writeln!(std::io::stderr().lock(), "error: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, `: `-separated, leaving out a
/// cause that the message before it already ends with (an I/O error shows
/// its operating-system cause in its own message).
fn one_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = match cause.downcast_ref::<vnn::Error>() {
            Some(e) => cli::with_flags(e),
            None => cause.to_string(),
        };
        if line.ends_with(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line.replace(['\n', '\r'], " ")
}
