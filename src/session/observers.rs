//! Observers the library provides.

use super::Observer;
use crate::error::Result;
use crate::plot::CurvePoint;
use crate::tensorboard::EventWriter;
use crate::train::Trainer;
use std::path::PathBuf;

/// Writes a TensorBoard event file into a folder: at each log point the
/// scalars `loss`, `accuracy/train`, `accuracy/test` (with a test set) and
/// `lr`, and a histogram `weights/layers.{i}` per layer. The file is created
/// when the run starts.
pub struct TensorBoard {
    dir: PathBuf,
    writer: Option<EventWriter>,
}

impl TensorBoard {
    /// An observer writing into `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> TensorBoard {
        TensorBoard {
            dir: dir.into(),
            writer: None,
        }
    }
}

impl Observer for TensorBoard {
    fn on_start(&mut self, _start: u64, _total: u64) -> Result<()> {
        self.writer = Some(EventWriter::create(&self.dir)?);
        Ok(())
    }

    fn on_log(&mut self, trainer: &Trainer<'_>, point: &CurvePoint) -> Result<()> {
        let Some(events) = &mut self.writer else {
            return Ok(());
        };
        let step = point.step as i64;
        events.add_scalar("loss", step, point.loss as f32)?;
        events.add_scalar("accuracy/train", step, point.train_accuracy as f32)?;
        if let Some(a) = point.test_accuracy {
            events.add_scalar("accuracy/test", step, a as f32)?;
        }
        events.add_scalar("lr", step, trainer.config().lr)?;
        let model = trainer.model();
        for (i, slot) in model.layout.layers.iter().enumerate() {
            events.add_histogram(
                &format!("weights/layers.{i}"),
                step,
                &model.params[slot.weight_range()],
            )?;
        }
        events.flush()
    }

    fn on_end(&mut self) -> Result<()> {
        match &mut self.writer {
            Some(events) => events.flush(),
            None => Ok(()),
        }
    }
}
