//! Lines for the user on stdout and stderr that never panic.
//!
//! `println!` panics when stdout is a closed pipe or a full device (Rust
//! ignores `SIGPIPE`, so such a write fails with `EPIPE` or `ENOSPC`). A
//! [`Console`] writes each line with `writeln!` on the locked stream and
//! flushes it; the first failure is kept, later lines are dropped, and
//! [`Console::finish`] gives it back as an [`Error::Output`], so a program
//! can do its work to the end (a training run saves its model) and then
//! report the failure once.

use crate::error::{Error, Result};
use std::io::Write;
use std::sync::{Arc, Mutex};

/// Writes `text` and a newline to stdout, or to stderr when `to_stderr`,
/// on the locked stream, and flushes it.
///
/// # Errors
/// [`Error::Output`] naming the stream when the write or the flush fails.
///
/// # Example
/// ```
/// vnn::output::write_line(true, "a note on stderr").unwrap();
/// ```
pub fn write_line(to_stderr: bool, text: &str) -> Result<()> {
    let (stream, result) = if to_stderr {
        let mut err = std::io::stderr().lock();
        ("stderr", writeln!(err, "{text}").and_then(|()| err.flush()))
    } else {
        let mut out = std::io::stdout().lock();
        ("stdout", writeln!(out, "{text}").and_then(|()| out.flush()))
    };
    result.map_err(|source| Error::Output {
        stream: stream.into(),
        source,
    })
}

/// Runs `write` on a buffered, locked stdout and flushes it: for output
/// larger than a line (a CSV of predictions).
///
/// # Errors
/// [`Error::Output`] when a write or the flush fails.
///
/// # Example
/// ```
/// use std::io::Write;
/// vnn::output::with_stdout(|w| writeln!(w, "prediction")).unwrap();
/// ```
pub fn with_stdout(write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>) -> Result<()> {
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    write(&mut out)
        .and_then(|()| out.flush())
        .map_err(|source| Error::Output {
            stream: "stdout".into(),
            source,
        })
}

/// Where a program's lines go, and the first write that failed.
///
/// Human-readable lines ([`Console::line`]) go to stdout, or to stderr when
/// stdout holds machine-readable output (`--json`); [`Console::data`] always
/// writes to stdout and [`Console::note`] to stderr. Clones share the
/// failure, so an observer and the program that made it see the same one.
///
/// # Example
/// ```
/// let console = vnn::output::Console::new(true);
/// console.line("to stderr, as with --json");
/// assert!(console.finish().is_ok());
/// ```
#[derive(Clone, Debug, Default)]
pub struct Console {
    to_stderr: bool,
    failure: Arc<Mutex<Option<Error>>>,
}

impl Console {
    /// A console whose human-readable lines go to stderr when `to_stderr`,
    /// else to stdout.
    pub fn new(to_stderr: bool) -> Console {
        Console {
            to_stderr,
            failure: Arc::default(),
        }
    }

    /// Writes a human-readable line (dropped once a write has failed).
    pub fn line(&self, text: &str) {
        self.write(self.to_stderr, text);
    }

    /// Writes a line of machine-readable output to stdout.
    pub fn data(&self, text: &str) {
        self.write(false, text);
    }

    /// Writes a line to stderr.
    pub fn note(&self, text: &str) {
        self.write(true, text);
    }

    /// Whether a write has failed.
    pub fn failed(&self) -> bool {
        self.lock().is_some()
    }

    /// Gives back the first failed write, if any (and forgets it).
    ///
    /// # Errors
    /// The [`Error::Output`] of the first write that failed.
    pub fn finish(&self) -> Result<()> {
        match self.lock().take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Writes `text` unless an earlier write failed; keeps the first
    /// failure.
    fn write(&self, to_stderr: bool, text: &str) {
        let mut failure = self.lock();
        if failure.is_none() {
            *failure = write_line(to_stderr, text).err();
        }
    }

    /// The failure slot (a panic elsewhere cannot poison it for good).
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Error>> {
        self.failure.lock().unwrap_or_else(|p| p.into_inner())
    }
}
