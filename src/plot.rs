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
use plotters::coord::types::{RangedCoordf64, RangedCoordu64};
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
    ChartContext<'a, BitMapBackend<'b>, Cartesian2d<RangedCoordu64, RangedCoordf64>>;

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
    (max_step, y_max): (u64, f64),
    path: &Path,
) -> Result<CurveChart<'a, 'b>> {
    ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 20))
        .margin(12)
        .margin_right(28)
        .x_label_area_size(45)
        .y_label_area_size(y_label_area)
        .build_cartesian_2d(0u64..max_step, 0f64..y_max)
        .map_err(plot_err(path))
}

/// Draws one learning curve of `color(class)` named `label` in the legend.
fn draw_curve(
    chart: &mut CurveChart,
    curve: impl Iterator<Item = (u64, f64)>,
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

/// Draws `curves.png`: loss and accuracy against the step.
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
        let max_step = points.last().map_or(1, |p| p.step).max(1);
        draw_loss(&left, points, max_step, path)?;
        draw_accuracy(&right, points, max_step, path)
    })
}

/// The left half of `curves.png`: the training loss, cut at 5% above its
/// largest finite value.
fn draw_loss(area: &Area, points: &[CurvePoint], max_step: u64, path: &Path) -> Result<()> {
    let e = plot_err(path);
    let hi = points
        .iter()
        .map(|p| p.loss)
        .filter(|v| v.is_finite())
        .fold(0.0, f64::max);
    let hi = if hi > 0.0 { hi * 1.05 } else { 1.0 };
    let mut chart = curve_chart(area, "Training loss", 70, (max_step, hi), path)?;
    chart
        .configure_mesh()
        .x_desc("step")
        .y_desc("loss")
        .x_labels(6)
        .y_labels(8)
        .y_label_formatter(&|v| format!("{v:.2}"))
        .draw()
        .map_err(&e)?;
    let curve = points.iter().map(|p| (p.step, p.loss.min(hi)));
    draw_curve(&mut chart, curve, 0, "loss (cross-entropy + L2)", path)?;
    draw_legend(&mut chart, SeriesLabelPosition::UpperRight, 0.8, path)
}

/// The right half of `curves.png`: training and (when logged) test
/// accuracy.
fn draw_accuracy(area: &Area, points: &[CurvePoint], max_step: u64, path: &Path) -> Result<()> {
    let mut chart = curve_chart(area, "Accuracy", 60, (max_step, 1.0), path)?;
    chart
        .configure_mesh()
        .x_desc("step")
        .y_desc("accuracy")
        .x_labels(6)
        .y_labels(6)
        .draw()
        .map_err(plot_err(path))?;
    let train = points.iter().map(|p| (p.step, p.train_accuracy));
    draw_curve(&mut chart, train, 1, "train", path)?;
    if points.iter().any(|p| p.test_accuracy.is_some()) {
        let test = points
            .iter()
            .filter_map(|p| p.test_accuracy.map(|a| (p.step, a)));
        draw_curve(&mut chart, test, 2, "test", path)?;
    }
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
        let points: Vec<CurvePoint> = (0..5)
            .map(|i| CurvePoint {
                step: 10 * i,
                loss: 1.0 / (1.0 + i as f64),
                train_accuracy: 0.2 * i as f64,
                test_accuracy: (i % 2 == 0).then_some(0.1 * i as f64),
            })
            .collect();
        let curves = dir.join("curves.png");
        plot_curves(&curves, "test", &points).unwrap();
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
