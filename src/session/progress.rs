//! The terminal observer: a progress bar and periodic lines.

use super::Observer;
use crate::error::Result;
use crate::output::Console;
use crate::train::StepStats;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::time::Instant;

/// A progress bar on the terminal (stderr), and every `print_every` steps
/// (and at the last) an `EPOCH e: Training loss (batch): l, Accuracy
/// (batch): a` line (the step's batch, before its update), on
/// stdout or, `to_stderr`, on stderr; notes go where the lines go.
///
/// Lines are written through a [`Console`]: a closed pipe or a full device
/// never panics and never stops the run; the lines after the first failure
/// are dropped, and the console given to [`Progress::console`] reports it.
/// The bar is drawn only on a terminal, and `indicatif` ignores its draw
/// errors.
pub struct Progress {
    to_stderr: bool,
    print_every: u64,
    bar: Option<ProgressBar>,
    last_bar: Instant,
    console: Console,
}

impl Progress {
    /// A progress observer printing a line every `print_every` steps.
    pub fn new(to_stderr: bool, print_every: u64) -> Progress {
        Progress {
            to_stderr,
            print_every,
            bar: None,
            last_bar: Instant::now(),
            console: Console::new(to_stderr),
        }
    }

    /// Writes the lines through `console` (shared with the program, which
    /// then learns of a failed write from [`Console::finish`]).
    pub fn console(mut self, console: Console) -> Progress {
        self.console = console;
        self
    }

    /// Prints `text` where the lines go.
    fn line(&self, text: &str) {
        self.console.line(text);
    }
}

impl Observer for Progress {
    fn on_start(&mut self, start: u64, total: u64) -> Result<()> {
        let bar = if self.to_stderr {
            ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr())
        } else {
            ProgressBar::new(total)
        };
        let template = "{bar:40.cyan/blue} {pos}/{len} steps [{elapsed_precise} < {eta}] {msg}";
        let style = ProgressStyle::with_template(template).expect("static template");
        bar.set_style(style.progress_chars("=> "));
        bar.set_position(start);
        self.bar = Some(bar);
        Ok(())
    }

    fn on_step(&mut self, stats: &StepStats, total: u64) -> Result<()> {
        let s = stats.step;
        let Some(bar) = &self.bar else { return Ok(()) };
        if (s - 1).is_multiple_of(self.print_every) || s == total {
            let line = format!(
                "EPOCH {}: Training loss (batch): {:.3}, Accuracy (batch): {:.3}",
                stats.epoch, stats.loss, stats.accuracy
            );
            bar.suspend(|| self.line(&line));
        }
        if self.last_bar.elapsed().as_millis() >= 100 || s == total {
            bar.set_position(s);
            bar.set_message(format!(
                "batch loss {:.4} acc {:.3}",
                stats.loss, stats.accuracy
            ));
            self.last_bar = Instant::now();
        }
        Ok(())
    }

    fn on_end(&mut self) -> Result<()> {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        Ok(())
    }

    fn on_note(&mut self, text: &str) -> Result<()> {
        self.line(text);
        Ok(())
    }
}
