//! The one error type of the library.
//!
//! Every variant carries the parts a program needs to act on it (the file,
//! line, tensor or setting at fault, what was expected and what was found),
//! and its message is one sentence built from them. The messages name
//! settings by their library names (`epochs`, `log_every`); a front end such
//! as the `vnn` command line renders them with its own option syntax.

use std::path::PathBuf;

/// Everything that can go wrong on data, files or settings. Kernel shape
/// mismatches are programming errors and panic instead (see `vnn-kernels`).
///
/// The enum is `#[non_exhaustive]`: later versions may add variants, so a
/// `match` on it outside this crate needs a wildcard arm.
///
/// ```
/// use vnn::train::TrainConfig;
///
/// let bad = TrainConfig { lr: -1.0, ..TrainConfig::default() };
/// match bad.validate() {
///     Err(vnn::Error::Setting { what, expected, got }) => {
///         assert_eq!((what.as_str(), expected.as_str(), got.as_str()), ("learning rate", "a positive number", "-1"));
///     }
///     other => panic!("{other:?}"),
/// }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// A data file (CSV) is malformed. `line` is 1-based, counting the header.
    #[error("{}{}{}: {msg}", path.display(), line.map(|l| format!(", line {l}")).unwrap_or_default(), column.as_ref().map(|c| format!(", column '{c}'")).unwrap_or_default())]
    Data {
        /// The file (or a name for in-memory data).
        path: PathBuf,
        /// 1-based line number, when one line is at fault.
        line: Option<u64>,
        /// The column at fault, when one is.
        column: Option<String>,
        /// What was expected.
        msg: String,
    },
    /// A model or checkpoint file is not a valid vnn model or checkpoint.
    #[error("{}{}: {msg}", path.display(), tensor.as_ref().map(|t| format!(", tensor '{t}'")).unwrap_or_default())]
    Model {
        /// The file.
        path: PathBuf,
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
    /// A value of the library's API (a training setting, a layer width, a
    /// split fraction, a label) is out of range.
    #[error("invalid setting: {what} must be {expected}, got {got}")]
    Setting {
        /// The setting, in words (`learning rate`).
        what: String,
        /// The range it must be in (`a positive number`).
        expected: String,
        /// The value given.
        got: String,
    },
    /// A setting of a recorded run ([`RunSettings`](crate::settings::RunSettings)),
    /// named by its field, is out of range.
    #[error("invalid setting: {option} must be {expected}, got {got}")]
    Option {
        /// The field (`epochs`, `log_every`).
        option: String,
        /// The range it must be in.
        expected: String,
        /// The value given.
        got: String,
    },
    /// A setting of a recorded run that its other settings make
    /// meaningless: it applies only when `needs` is `value`.
    #[error("{option} does not apply here: it applies to {needs} {value} only")]
    Inapplicable {
        /// The field given (`momentum`).
        option: String,
        /// The field it depends on (`optimizer`).
        needs: String,
        /// The value of `needs` it applies to (`momentum`).
        value: String,
    },
    /// A setting that a resumed run cannot change: it keeps the settings
    /// recorded in its checkpoint.
    #[error("{option} cannot change when a run resumes: a resumed run keeps the settings recorded in its checkpoint (only {} may change)", allowed.join(", "))]
    FixedOnResume {
        /// The field given (`lr`).
        option: String,
        /// The fields a resumed run accepts.
        allowed: Vec<String>,
    },
    /// The data of a resumed run is not the data its checkpoint was trained
    /// on (their fingerprints, [`session::fingerprint`](crate::session::fingerprint), differ).
    #[error("{data}: the data differs from the data the checkpoint {} was trained on ({got} now, {expected} then)", checkpoint.display())]
    DataChanged {
        /// The name of the data.
        data: String,
        /// The checkpoint.
        checkpoint: PathBuf,
        /// The fingerprint the checkpoint recorded.
        expected: String,
        /// The fingerprint of the data now.
        got: String,
    },
    /// A checkpoint whose contents do not belong together or to this run:
    /// its model does not match its settings, or its optimizer state does
    /// not fit its optimizer.
    #[error("{}: the checkpoint's {what} does not match {expected} ({got})", checkpoint.display())]
    Mismatch {
        /// The checkpoint.
        checkpoint: PathBuf,
        /// The part at fault (`model`, `optimizer state`).
        what: String,
        /// What it must match.
        expected: String,
        /// How it differs.
        got: String,
    },
    /// The final weights of a run are not finite, so they were not saved;
    /// the checkpoint keeps the last good state.
    #[error("the weights after step {step} are not finite: {} keeps its last good state", checkpoint.display())]
    NotFinite {
        /// The step after which the weights stopped being finite.
        step: u64,
        /// The checkpoint that keeps the last good state.
        checkpoint: PathBuf,
    },
    /// A picture could not be drawn.
    #[error("{}: {msg}", path.display())]
    Plot {
        /// The picture file.
        path: PathBuf,
        /// Why.
        msg: String,
    },
    /// Something whose size comes from outside (a layer width, a spiral
    /// size, rows times classes, a file) needs more memory than the budget
    /// of [`budget`](crate::budget) allows; nothing of that size was
    /// allocated.
    #[error("{what} needs {}, more than the memory limit of {}: {hint} (or raise the limit with VNN_MAX_MEMORY)", needed.map_or_else(|| "more than 2^64 bytes".to_string(), crate::budget::shown_bytes), crate::budget::shown_bytes(*limit))]
    TooLarge {
        /// What was asked (`a model of layer widths [2, 1000000000, 3]`).
        what: String,
        /// The bytes it needs (`None`: more than a `u64` counts).
        needed: Option<u64>,
        /// The budget in bytes.
        limit: u64,
        /// What to do instead, naming settings in backquotes
        /// (`` lower `hidden` ``).
        hint: String,
    },
    /// A model's output (its logits or probabilities) is not finite for
    /// the input row `row` (1-based, counting data rows), although the
    /// inputs and weights are finite: the computation overflowed `f32`.
    #[error("row {row}: {}", OUTPUT_NOT_FINITE)]
    OutputNotFinite {
        /// The 1-based input row.
        row: usize,
    },
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
    /// A resumed run had already stopped early: its watched loss had not
    /// improved for `patience` evaluations.
    #[error("the run in this checkpoint stopped early at step {step} (its best step was {best_step}); nothing is left to resume")]
    StoppedEarly {
        /// The step the run stopped at.
        step: u64,
        /// The step of the best evaluation, whose weights the run kept.
        best_step: u64,
    },
    /// Training diverged: the loss stopped being finite.
    #[error("training diverged at step {step}: the loss is {loss}; lower the learning rate or raise regularization")]
    Diverged {
        /// The optimizer step whose loss was not finite (1-based).
        step: u64,
        /// The loss value.
        loss: f64,
    },
    /// A line for the user could not be written: stdout or stderr is a
    /// closed pipe or a full device.
    #[error("cannot write to {stream}: {source}")]
    Output {
        /// `stdout` or `stderr`.
        stream: String,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// Another run holds the lock of the run folder.
    #[error("{}: the run folder is in use by another run ({}); wait for it to end or choose another folder", dir.display(), pid.map_or("its process id is not known yet".to_string(), |p| format!("process {p}")))]
    Busy {
        /// The run folder.
        dir: PathBuf,
        /// The process id the holder wrote into the lock file, when known.
        pid: Option<u32>,
    },
}

impl Error {
    /// An [`Error::Setting`].
    pub(crate) fn setting(
        what: impl Into<String>,
        expected: impl Into<String>,
        got: impl ToString,
    ) -> Error {
        Error::Setting {
            what: what.into(),
            expected: expected.into(),
            got: got.to_string(),
        }
    }

    /// An [`Error::Option`].
    pub(crate) fn option(option: &str, expected: impl Into<String>, got: impl ToString) -> Error {
        Error::Option {
            option: option.into(),
            expected: expected.into(),
            got: got.to_string(),
        }
    }
}

/// The cause of [`Error::OutputNotFinite`].
pub(crate) const OUTPUT_NOT_FINITE: &str =
    "the model's output is not finite for these inputs (its logits overflow f32)";

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
