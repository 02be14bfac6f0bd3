//! The one error type of the library.

use std::path::PathBuf;

/// Everything that can go wrong on data, files or settings. Kernel shape
/// mismatches are programming errors and panic instead (see `vnn-kernels`).
///
/// The enum is `#[non_exhaustive]`: later versions may add variants, so a
/// `match` on it outside this crate needs a wildcard arm.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// A data file (CSV) is malformed. `line` is 1-based, counting the header.
    #[error("{path}{}{}: {msg}", line.map(|l| format!(", line {l}")).unwrap_or_default(), column.as_ref().map(|c| format!(", column '{c}'")).unwrap_or_default())]
    Data {
        /// The file (or a name for in-memory data).
        path: String,
        /// 1-based line number, when one line is at fault.
        line: Option<u64>,
        /// The column at fault, when one is.
        column: Option<String>,
        /// What was expected.
        msg: String,
    },
    /// A model file is not a valid vnn model.
    #[error("{path}{}: {msg}", tensor.as_ref().map(|t| format!(", tensor '{t}'")).unwrap_or_default())]
    Model {
        /// The model file.
        path: String,
        /// The tensor at fault, when one is.
        tensor: Option<String>,
        /// What was expected.
        msg: String,
    },
    /// An input has the wrong length for the model.
    #[error("{what}: expected {expected} values, got {got}")]
    Shape {
        /// Which input.
        what: String,
        /// The length the model needs.
        expected: usize,
        /// The length given.
        got: usize,
    },
    /// A setting is out of range or settings contradict each other.
    #[error("invalid setting: {0}")]
    Config(String),
    /// A run cannot go on as asked: a checkpoint that does not belong to
    /// this run, or a final state that cannot be saved.
    #[error("{0}")]
    Run(String),
    /// A resumed run would start at or past its last step.
    #[error("{}", run_ended(*step, *total, *epochs))]
    RunEnded {
        /// The checkpoint's step.
        step: u64,
        /// The steps of the whole run.
        total: u64,
        /// The run's epochs.
        epochs: u64,
    },
    /// Training diverged: the loss stopped being finite.
    #[error("training diverged at step {step}: the loss is {loss}; lower the learning rate or raise regularization")]
    Diverged {
        /// The optimizer step whose loss was not finite (1-based).
        step: u64,
        /// The loss value.
        loss: f64,
    },
}

/// The text of [`Error::RunEnded`].
fn run_ended(step: u64, total: u64, epochs: u64) -> String {
    if step == total {
        format!("the run in this checkpoint is complete (step {step} of {total}); give more epochs to continue it")
    } else {
        format!("the checkpoint is at step {step}, past the end of a run of {epochs} epochs ({total} steps); give more epochs")
    }
}

/// Result with the library's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A value quoted in an error message, cut to at most 40 characters (then
/// `...`), so a hostile file cannot flood the message.
pub(crate) fn shown(s: &str) -> String {
    const MAX: usize = 40;
    match s.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}...", &s[..cut]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::shown;

    #[test]
    fn shown_keeps_short_values_and_cuts_long_ones_at_a_character() {
        assert_eq!(shown(""), "");
        assert_eq!(shown(&"a".repeat(40)), "a".repeat(40));
        assert_eq!(shown(&"a".repeat(41)), format!("{}...", "a".repeat(40)));
        // The cut counts characters, not bytes: 41 two-byte characters.
        assert_eq!(shown(&"é".repeat(41)), format!("{}...", "é".repeat(40)));
    }
}
