//! PNG pictures of a run: learning curves and the decision boundary of a
//! 2-D model. Text uses an embedded font (no system fonts needed). Pictures
//! are drawn in memory, encoded as PNG and written with
//! [`fsutil::write_atomic`] (a reader never sees a half-written picture).

use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::fsutil;
use crate::model::Model;
use image::codecs::png::PngEncoder;
use image::{ColorType, ImageEncoder};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontStyle;
use std::path::Path;
use std::sync::Once;

/// One logged point of a learning curve (defined in [`crate::session`]).
pub use crate::session::CurvePoint;

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

fn register_fonts(path: &Path) -> Result<()> {
    static ONCE: Once = Once::new();
    let mut result = Ok(());
    ONCE.call_once(|| {
        for style in [FontStyle::Normal, FontStyle::Bold] {
            let bytes = match style {
                FontStyle::Bold => dejavu::sans::bold(),
                _ => dejavu::sans::regular(),
            };
            if plotters::style::register_font("sans-serif", style, bytes).is_err() {
                result = Err(Error::Plot {
                    path: path.to_path_buf(),
                    msg: "the embedded font could not be loaded".into(),
                });
            }
        }
    });
    result
}

/// An [`Error::Plot`] for `path` from a drawing or encoding error, as a
/// short sentence (never the nested debug text of the backend's error).
fn plot_err<E: Sentence>(path: &Path) -> impl Fn(E) -> Error + '_ {
    move |e| Error::Plot {
        path: path.to_path_buf(),
        msg: e.sentence().into(),
    }
}

/// What went wrong in drawing or encoding a picture, in words.
trait Sentence {
    /// The sentence.
    fn sentence(&self) -> &'static str;
}

impl<E: std::error::Error + Send + Sync> Sentence for DrawingAreaErrorKind<E> {
    fn sentence(&self) -> &'static str {
        use plotters::drawing::DrawingAreaErrorKind as Kind;
        match self {
            // The backend's error kind is not exported by plotters; its
            // text tells a font error from a drawing error.
            Kind::BackendError(e) if e.to_string().starts_with("Font") => {
                "the text could not be drawn with the embedded font"
            }
            Kind::BackendError(_) => "the picture could not be drawn in memory",
            Kind::SharingError => "the drawing area was in use by another drawing",
            Kind::LayoutError => "the chart does not fit the picture",
        }
    }
}

impl<E: Sentence> Sentence for &E {
    fn sentence(&self) -> &'static str {
        (**self).sentence()
    }
}

impl Sentence for image::ImageError {
    fn sentence(&self) -> &'static str {
        "the picture could not be encoded as PNG"
    }
}

/// The drawing area of a picture being rendered.
type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;

/// A chart of a learning curve: steps across, values up.
type CurveChart<'a, 'b> =
    ChartContext<'a, BitMapBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// Renders a `width x height` picture in memory with `draw` (on a white
/// background), encodes it as PNG and writes it to `path` with
/// [`fsutil::write_atomic`] (a reader never sees a half-written picture).
fn render_png(
    path: &Path,
    (width, height): (u32, u32),
    draw: impl FnOnce(&Area) -> Result<()>,
) -> Result<()> {
    register_fonts(path)?;
    let e = plot_err(path);
    let mut pixels = vec![0u8; 3 * width as usize * height as usize];
    {
        let root = BitMapBackend::with_buffer(&mut pixels, (width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(&e)?;
        draw(&root)?;
        root.present().map_err(&e)?;
    }
    let mut png = Vec::new();
    PngEncoder::new(&mut png)
        .write_image(&pixels, width, height, ColorType::Rgb8)
        .map_err(plot_err(path))?;
    fsutil::write_atomic(path, &png)
}

/// A legend line of `color`, as drawn by the learning curves.
fn line_legend(color: RGBColor) -> impl Fn((i32, i32)) -> PathElement<(i32, i32)> {
    move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
}

/// Draws the legend of `chart` at `position` on a white background of
/// opacity `opacity`, framed in black.
fn draw_legend<'a, 'b: 'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, BitMapBackend<'b>, CT>,
    position: SeriesLabelPosition,
    opacity: f64,
    path: &Path,
) -> Result<()> {
    chart
        .configure_series_labels()
        .position(position)
        .background_style(WHITE.mix(opacity))
        .border_style(BLACK)
        .draw()
        .map_err(plot_err(path))
}

/// A learning-curve chart on `area`: `caption` above, steps `0..max_step`
/// across, `0..y_max` up, `y_label_area` pixels for the value labels.
fn curve_chart<'a, 'b>(
    area: &'a Area<'b>,
    caption: &str,
    y_label_area: u32,
    (axis, y_max): (&StepAxis, f64),
    path: &Path,
) -> Result<CurveChart<'a, 'b>> {
    ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 20))
        .margin(12)
        .margin_right(28)
        .x_label_area_size(45)
        .y_label_area_size(y_label_area)
        .build_cartesian_2d(axis.range(), 0f64..y_max)
        .map_err(plot_err(path))
}

/// Draws one learning curve of `color(class)` named `label` in the legend.
fn draw_curve(
    chart: &mut CurveChart,
    curve: impl Iterator<Item = (f64, f64)>,
    class: usize,
    label: &str,
    path: &Path,
) -> Result<()> {
    chart
        .draw_series(LineSeries::new(curve, color(class).stroke_width(2)))
        .map_err(plot_err(path))?
        .label(label)
        .legend(line_legend(color(class)));
    Ok(())
}

/// Runs longer than this many steps get a log-scale step axis in
/// `curves.png`.
pub const LOG_AXIS_STEPS: u64 = 1000;

/// The step axis of `curves.png`: linear, or log-scale (base 10) for long
/// runs; positions are `step` or `log10(step)`.
struct StepAxis {
    log: bool,
    max_step: u64,
}

impl StepAxis {
    fn new(points: &[CurvePoint]) -> StepAxis {
        let max_step = points.iter().map(|p| p.step).max().unwrap_or(1).max(1);
        StepAxis {
            log: max_step > LOG_AXIS_STEPS,
            max_step,
        }
    }

    fn range(&self) -> std::ops::Range<f64> {
        match self.log {
            true => 0.0..(self.max_step as f64).log10(),
            false => 0.0..self.max_step as f64,
        }
    }

    fn at(&self, step: u64) -> f64 {
        match self.log {
            true => (step.max(1) as f64).log10(),
            false => step as f64,
        }
    }

    fn label(&self, x: f64) -> String {
        let step = if self.log { 10f64.powf(x) } else { x };
        format!("{:.0}", step.round())
    }

    fn desc(&self) -> &'static str {
        if self.log {
            "step (log scale)"
        } else {
            "step"
        }
    }
}

/// Draws `curves.png`: loss and accuracy against the step, on the
/// training, validation and test rows (those the points have); the step
/// axis is log-scale for runs longer than [`LOG_AXIS_STEPS`] steps.
///
/// # Errors
/// If the file cannot be written or `points` is empty.
pub fn plot_curves(path: impl AsRef<Path>, title: &str, points: &[CurvePoint]) -> Result<()> {
    let path = path.as_ref();
    if points.is_empty() {
        return Err(Error::Plot {
            path: path.to_path_buf(),
            msg: "no points to plot".into(),
        });
    }
    render_png(path, (1200, 500), |root| {
        let root = root
            .titled(title, ("sans-serif", 26).into_font())
            .map_err(plot_err(path))?;
        let (left, right) = root.split_horizontally(600);
        let axis = StepAxis::new(points);
        draw_loss(&left, points, &axis, path)?;
        draw_accuracy(&right, points, &axis, path)
    })
}

/// The series of `curves.png`: (name, loss, accuracy) of each data set.
type Series = (
    &'static str,
    fn(&CurvePoint) -> Option<f64>,
    fn(&CurvePoint) -> Option<f64>,
);

const SERIES: [Series; 3] = [
    ("train", |p| Some(p.train_loss), |p| Some(p.train_accuracy)),
    ("val", |p| p.val_loss, |p| p.val_accuracy),
    ("test", |p| p.test_loss, |p| p.test_accuracy),
];

/// Draws the series of `value` that the points have, clipped at `hi`.
fn draw_series(
    chart: &mut CurveChart,
    points: &[CurvePoint],
    (axis, hi): (&StepAxis, f64),
    value: impl Fn(&Series) -> fn(&CurvePoint) -> Option<f64>,
    path: &Path,
) -> Result<()> {
    for (class, series) in SERIES.iter().enumerate() {
        let get = value(series);
        if points.iter().any(|p| get(p).is_some()) {
            let curve = points
                .iter()
                .filter_map(|p| get(p).map(|v| (axis.at(p.step), v.min(hi))));
            draw_curve(chart, curve, class, series.0, path)?;
        }
    }
    Ok(())
}

/// The left half of `curves.png`: the losses (mean cross-entropy), cut at
/// 5% above the largest finite value.
fn draw_loss(area: &Area, points: &[CurvePoint], axis: &StepAxis, path: &Path) -> Result<()> {
    let e = plot_err(path);
    let hi = points
        .iter()
        .flat_map(|p| [Some(p.train_loss), p.val_loss, p.test_loss])
        .flatten()
        .filter(|v| v.is_finite())
        .fold(0.0, f64::max);
    let hi = if hi > 0.0 { hi * 1.05 } else { 1.0 };
    let mut chart = curve_chart(area, "Loss", 70, (axis, hi), path)?;
    chart
        .configure_mesh()
        .x_desc(axis.desc())
        .y_desc("loss (cross-entropy)")
        .x_labels(6)
        .y_labels(8)
        .x_label_formatter(&|x| axis.label(*x))
        .y_label_formatter(&|v| format!("{v:.2}"))
        .draw()
        .map_err(&e)?;
    draw_series(&mut chart, points, (axis, hi), |s| s.1, path)?;
    draw_legend(&mut chart, SeriesLabelPosition::UpperRight, 0.8, path)
}

/// The right half of `curves.png`: the accuracies.
fn draw_accuracy(area: &Area, points: &[CurvePoint], axis: &StepAxis, path: &Path) -> Result<()> {
    let mut chart = curve_chart(area, "Accuracy", 60, (axis, 1.0), path)?;
    chart
        .configure_mesh()
        .x_desc(axis.desc())
        .y_desc("accuracy")
        .x_labels(6)
        .y_labels(6)
        .x_label_formatter(&|x| axis.label(*x))
        .draw()
        .map_err(plot_err(path))?;
    draw_series(&mut chart, points, (axis, 1.0), |s| s.2, path)?;
    draw_legend(&mut chart, SeriesLabelPosition::LowerRight, 0.8, path)
}

/// Cells of the decision-boundary grid along each axis.
const GRID: usize = 200;

/// Draws `boundary.png` for a model on 2-D data: the predicted class of
/// every point of a grid as a light colour, the data points on top.
/// `data` holds raw (unstandardized) features, as the model expects.
///
/// # Errors
/// If the data or model is not 2-D, or the file cannot be written.
pub fn plot_boundary(
    path: impl AsRef<Path>,
    title: &str,
    model: &Model,
    data: &Dataset,
) -> Result<()> {
    let path = path.as_ref();
    if data.n_features != 2 || model.n_features() != 2 {
        return Err(Error::Plot {
            path: path.to_path_buf(),
            msg: "a decision boundary needs 2-D data".into(),
        });
    }
    let x = padded_range(data.features.iter().step_by(2).copied());
    let y = padded_range(data.features.iter().skip(1).step_by(2).copied());
    let mut grid = Vec::with_capacity(GRID * GRID * 2);
    for j in 0..GRID {
        for i in 0..GRID {
            grid.push(x.0 + (x.1 - x.0) * (i as f32 + 0.5) / GRID as f32);
            grid.push(y.0 + (y.1 - y.0) * (j as f32 + 0.5) / GRID as f32);
        }
    }
    let pred = model.predict(&grid, GRID * GRID)?;
    render_png(path, (720, 720), |root| {
        draw_boundary(root, title, data, &pred, (x, y), path)
    })
}

/// The range of `values` widened by 10% on each side (at least 1e-3), or
/// `(-1, 1)` when there are no finite bounds.
fn padded_range(values: impl Iterator<Item = f32>) -> (f32, f32) {
    let (lo, hi) = values.fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if lo.is_finite() && hi.is_finite() {
        let pad = ((hi - lo) * 0.1).max(1e-3);
        (lo - pad, hi + pad)
    } else {
        (-1.0, 1.0)
    }
}

/// The picture of [`plot_boundary`]: the grid's predicted classes `pred`
/// over the ranges `((x0, x1), (y0, y1))`, then the data points by class.
fn draw_boundary(
    root: &Area,
    title: &str,
    data: &Dataset,
    pred: &[u32],
    ((x0, x1), (y0, y1)): ((f32, f32), (f32, f32)),
    path: &Path,
) -> Result<()> {
    let e = plot_err(path);
    let mut chart = ChartBuilder::on(root)
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
        let rows = (0..data.n_rows()).filter(|&r| data.labels[r] as usize == class);
        chart
            .draw_series(rows.map(|r| {
                Circle::new(
                    (data.features[2 * r], data.features[2 * r + 1]),
                    4,
                    c.filled(),
                )
            }))
            .map_err(&e)?
            .label(format!("class {name}"))
            .legend(move |(x, y)| Circle::new((x + 8, y), 4, c.filled()));
    }
    draw_legend(&mut chart, SeriesLabelPosition::UpperRight, 0.6, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The width and height in the IHDR chunk of PNG `bytes`.
    fn png_size(bytes: &[u8]) -> (u32, u32) {
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        assert_eq!(&bytes[12..16], b"IHDR");
        let be = |i: usize| u32::from_be_bytes(bytes[i..i + 4].try_into().unwrap());
        (be(16), be(20))
    }

    #[test]
    fn pictures_are_whole_pngs_and_leave_no_temporary_file() {
        let dir = std::env::temp_dir().join(format!("vnn-plot-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let point = |step: u64, i: f64| CurvePoint {
            step,
            train_loss: 1.0 / (1.0 + i),
            train_accuracy: 0.2 * i,
            val_loss: Some(1.2 / (1.0 + i)),
            val_accuracy: Some(0.15 * i),
            test_loss: None,
            test_accuracy: step.is_multiple_of(20).then_some(0.1 * i),
            lr: 0.1,
        };
        let points: Vec<CurvePoint> = (0..5).map(|i| point(10 * i, i as f64)).collect();
        let curves = dir.join("curves.png");
        plot_curves(&curves, "test", &points).unwrap();
        assert_eq!(png_size(&std::fs::read(&curves).unwrap()), (1200, 500));
        // A long run: a log-scale step axis (step 0 drawn at step 1).
        let long: Vec<CurvePoint> = (0..5).map(|i| point(10u64.pow(i), i as f64)).collect();
        assert!(StepAxis::new(&long).log && !StepAxis::new(&points).log);
        assert_eq!(StepAxis::new(&long).label(3.0), "1000");
        plot_curves(&curves, "long", &long).unwrap();
        assert_eq!(png_size(&std::fs::read(&curves).unwrap()), (1200, 500));

        let data = crate::data::spiral(20, 3, 0);
        let model = Model::new(&[2, 8, 3], crate::model::Init::He, 0).unwrap();
        let boundary = dir.join("boundary.png");
        plot_boundary(&boundary, "test", &model, &data).unwrap();
        assert_eq!(png_size(&std::fs::read(&boundary).unwrap()), (720, 720));

        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["boundary.png", "curves.png"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn no_points_is_an_error_and_writes_nothing() {
        let path = std::env::temp_dir().join(format!("vnn-plot-empty-{}.png", std::process::id()));
        assert!(plot_curves(&path, "t", &[]).is_err());
        assert!(!path.exists());
    }
}
