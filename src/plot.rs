//! PNG pictures of a run: learning curves and the decision boundary of a
//! 2-D model. Text uses an embedded font (no system fonts needed).

use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::model::Model;
use plotters::prelude::*;
use plotters::style::FontStyle;
use std::path::Path;
use std::sync::Once;

/// One logged point of a learning curve.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CurvePoint {
    /// Optimizer step.
    pub step: u64,
    /// Training loss (with the L2 term).
    pub loss: f64,
    /// Training accuracy.
    pub train_accuracy: f64,
    /// Test accuracy, when a test split exists.
    pub test_accuracy: Option<f64>,
}

const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

fn color(class: usize) -> RGBColor {
    let base = PALETTE[class % PALETTE.len()];
    // Vary classes beyond the palette a little so they stay distinguishable.
    let shift = (class / PALETTE.len()) as u8 * 37;
    RGBColor(
        base.0.wrapping_add(shift),
        base.1,
        base.2.wrapping_sub(shift),
    )
}

fn light(c: RGBColor) -> RGBColor {
    let mix = |v: u8| ((v as u16 + 3 * 255) / 4) as u8;
    RGBColor(mix(c.0), mix(c.1), mix(c.2))
}

fn register_fonts() -> Result<()> {
    static ONCE: Once = Once::new();
    let mut result = Ok(());
    ONCE.call_once(|| {
        for style in [FontStyle::Normal, FontStyle::Bold] {
            let bytes = match style {
                FontStyle::Bold => dejavu::sans::bold(),
                _ => dejavu::sans::regular(),
            };
            if plotters::style::register_font("sans-serif", style, bytes).is_err() {
                result = Err(Error::Config(
                    "the embedded font could not be loaded".into(),
                ));
            }
        }
    });
    result
}

fn plot_err<E: std::fmt::Display>(path: &Path) -> impl Fn(E) -> Error + '_ {
    move |e| Error::Io {
        path: path.to_path_buf(),
        source: std::io::Error::other(e.to_string()),
    }
}

/// Renders to a temporary file next to `path`, then renames it over `path`
/// (a reader never sees a half-written picture).
fn render_atomic(path: &Path, draw: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    register_fonts()?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "plot.png".into());
    let tmp = path.with_file_name(format!(".{name}.tmp.png"));
    draw(&tmp)?;
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    std::fs::File::open(&tmp)
        .and_then(|f| f.sync_all())
        .map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

/// Draws `curves.png`: loss and accuracy against the step.
///
/// # Errors
/// If the file cannot be written or `points` is empty.
pub fn plot_curves(path: &Path, title: &str, points: &[CurvePoint]) -> Result<()> {
    if points.is_empty() {
        return Err(Error::Config("no points to plot".into()));
    }
    render_atomic(path, |tmp| {
        let e = plot_err(path);
        let root = BitMapBackend::new(tmp, (1200, 500)).into_drawing_area();
        root.fill(&WHITE).map_err(&e)?;
        let root = root
            .titled(title, ("sans-serif", 26).into_font())
            .map_err(&e)?;
        let (left, right) = root.split_horizontally(600);
        let max_step = points.last().map_or(1, |p| p.step).max(1);
        let losses: Vec<f64> = points.iter().map(|p| p.loss).collect();
        let hi = losses
            .iter()
            .cloned()
            .filter(|v| v.is_finite())
            .fold(0.0, f64::max);
        let hi = if hi > 0.0 { hi * 1.05 } else { 1.0 };
        let mut chart = ChartBuilder::on(&left)
            .caption("Training loss", ("sans-serif", 20))
            .margin(12)
            .margin_right(28)
            .x_label_area_size(45)
            .y_label_area_size(70)
            .build_cartesian_2d(0u64..max_step, 0f64..hi)
            .map_err(&e)?;
        chart
            .configure_mesh()
            .x_desc("step")
            .y_desc("loss")
            .x_labels(6)
            .y_labels(8)
            .y_label_formatter(&|v| format!("{v:.2}"))
            .draw()
            .map_err(&e)?;
        chart
            .draw_series(LineSeries::new(
                points.iter().map(|p| (p.step, p.loss.min(hi))),
                color(0).stroke_width(2),
            ))
            .map_err(&e)?
            .label("loss (cross-entropy + L2)")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color(0).stroke_width(2)));
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(&e)?;

        let mut chart = ChartBuilder::on(&right)
            .caption("Accuracy", ("sans-serif", 20))
            .margin(12)
            .margin_right(28)
            .x_label_area_size(45)
            .y_label_area_size(60)
            .build_cartesian_2d(0u64..max_step, 0f64..1.0)
            .map_err(&e)?;
        chart
            .configure_mesh()
            .x_desc("step")
            .y_desc("accuracy")
            .x_labels(6)
            .y_labels(6)
            .draw()
            .map_err(&e)?;
        chart
            .draw_series(LineSeries::new(
                points.iter().map(|p| (p.step, p.train_accuracy)),
                color(1).stroke_width(2),
            ))
            .map_err(&e)?
            .label("train")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color(1).stroke_width(2)));
        if points.iter().any(|p| p.test_accuracy.is_some()) {
            chart
                .draw_series(LineSeries::new(
                    points
                        .iter()
                        .filter_map(|p| p.test_accuracy.map(|a| (p.step, a))),
                    color(2).stroke_width(2),
                ))
                .map_err(&e)?
                .label("test")
                .legend(|(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color(2).stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(&e)?;
        root.present().map_err(&e)?;
        Ok(())
    })
}

/// Draws `boundary.png` for a model on 2-D data: the predicted class of
/// every point of a grid as a light colour, the data points on top.
/// `data` holds raw (unstandardized) features, as the model expects.
///
/// # Errors
/// If the data or model is not 2-D, or the file cannot be written.
pub fn plot_boundary(path: &Path, title: &str, model: &Model, data: &Dataset) -> Result<()> {
    if data.n_features != 2 || model.n_features() != 2 {
        return Err(Error::Config("a decision boundary needs 2-D data".into()));
    }
    let xs = data.features.iter().step_by(2).copied();
    let ys = data.features.iter().skip(1).step_by(2).copied();
    let range = |it: &mut dyn Iterator<Item = f32>| {
        let (lo, hi) = it.fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
        if lo.is_finite() && hi.is_finite() {
            let pad = ((hi - lo) * 0.1).max(1e-3);
            (lo - pad, hi + pad)
        } else {
            (-1.0, 1.0)
        }
    };
    let (x0, x1) = range(&mut { xs });
    let (y0, y1) = range(&mut { ys });
    const GRID: usize = 200;
    let mut grid = Vec::with_capacity(GRID * GRID * 2);
    for j in 0..GRID {
        for i in 0..GRID {
            grid.push(x0 + (x1 - x0) * (i as f32 + 0.5) / GRID as f32);
            grid.push(y0 + (y1 - y0) * (j as f32 + 0.5) / GRID as f32);
        }
    }
    let pred = model.predict(&grid, GRID * GRID)?;
    render_atomic(path, |tmp| {
        let e = plot_err(path);
        let root = BitMapBackend::new(tmp, (720, 720)).into_drawing_area();
        root.fill(&WHITE).map_err(&e)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 22))
            .margin(14)
            .x_label_area_size(45)
            .y_label_area_size(55)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(&e)?;
        chart
            .configure_mesh()
            .disable_mesh()
            .x_desc(data.feature_names.first().map_or("x0", |s| s.as_str()))
            .y_desc(data.feature_names.get(1).map_or("x1", |s| s.as_str()))
            .x_labels(6)
            .y_labels(6)
            .x_label_formatter(&|v| format!("{v:.2}"))
            .y_label_formatter(&|v| format!("{v:.2}"))
            .draw()
            .map_err(&e)?;
        let (dx, dy) = ((x1 - x0) / GRID as f32, (y1 - y0) / GRID as f32);
        chart
            .draw_series(pred.iter().enumerate().map(|(idx, &c)| {
                let (i, j) = (idx % GRID, idx / GRID);
                let (px, py) = (x0 + dx * i as f32, y0 + dy * j as f32);
                Rectangle::new(
                    [(px, py), (px + dx, py + dy)],
                    light(color(c as usize)).filled(),
                )
            }))
            .map_err(&e)?;
        for class in 0..data.n_classes {
            let c = color(class);
            let name = data
                .class_names
                .get(class)
                .cloned()
                .unwrap_or_else(|| class.to_string());
            chart
                .draw_series(
                    (0..data.n_rows())
                        .filter(|&r| data.labels[r] as usize == class)
                        .map(|r| {
                            Circle::new(
                                (data.features[2 * r], data.features[2 * r + 1]),
                                4,
                                c.filled(),
                            )
                        }),
                )
                .map_err(&e)?
                .label(format!("class {name}"))
                .legend(move |(x, y)| Circle::new((x + 8, y), 4, c.filled()));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.6))
            .border_style(BLACK)
            .draw()
            .map_err(&e)?;
        root.present().map_err(&e)?;
        Ok(())
    })
}
