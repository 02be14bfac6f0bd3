//! CSV files: training data (features plus a label column) and inputs for
//! prediction or evaluation (a model's feature columns, picked by name).
//!
//! The first row is always the header. Fields may be quoted (`"a,b"`, with
//! `""` for a quote inside); lines may end in LF or CRLF; a UTF-8 byte order
//! mark before the first header name is ignored. The delimiter is never
//! guessed: it is `,` unless the caller says otherwise. Whitespace around a
//! field is ignored. Empty lines are skipped.
//!
//! The path `-` is standard input (read once, as a stream); errors name it
//! [`STDIN_NAME`], `<stdin>`.
//!
//! Input is untrusted: every malformed file gives an [`Error::Data`] naming
//! the file, the 1-based line (the header is line 1) and the column at fault,
//! and memory stays bounded: a single record may not exceed
//! [`MAX_RECORD_BYTES`] and the whole input may not exceed
//! [`MAX_INPUT_BYTES`]; both are checked while reading, before the bytes are
//! buffered.
//!
//! [`Error::Data`]: crate::error::Error::Data

mod source;

use crate::data::Dataset;
use crate::error::{shown, Result};
use source::{open_input, Source};
use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

/// The longest record (one line, or several when a quoted field spans lines)
/// accepted, in bytes: 1 MiB.
pub const MAX_RECORD_BYTES: u64 = 1 << 20;

/// The largest CSV input accepted, in bytes: 1 GiB.
pub const MAX_INPUT_BYTES: u64 = 1 << 30;

/// The name of standard input (the path `-`) in error messages.
pub const STDIN_NAME: &str = "<stdin>";

/// Whether `path` is `-`, which the loaders read as standard input.
///
/// ```
/// assert!(vnn::csv::is_stdin("-".as_ref()));
/// assert!(!vnn::csv::is_stdin("./-".as_ref()));
/// ```
pub fn is_stdin(path: &Path) -> bool {
    path.as_os_str() == "-"
}

/// The name of the input `path` in error messages: [`STDIN_NAME`] for `-`,
/// else the path as displayed.
///
/// ```
/// assert_eq!(vnn::csv::input_name("-".as_ref()), "<stdin>");
/// assert_eq!(vnn::csv::input_name("data/iris.csv".as_ref()), "data/iris.csv");
/// ```
pub fn input_name(path: &Path) -> String {
    if is_stdin(path) {
        STDIN_NAME.into()
    } else {
        path.display().to_string()
    }
}

/// How to read a training CSV.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CsvOptions {
    /// Name of the label column; `None` means the last column.
    pub label: Option<String>,
    /// Field delimiter, `b','` by default (`b';'` and `b'\t'` are common).
    pub delimiter: u8,
}

impl Default for CsvOptions {
    fn default() -> Self {
        CsvOptions {
            label: None,
            delimiter: b',',
        }
    }
}

/// Inputs read for prediction or evaluation by [`load_features_csv`].
#[derive(Clone, Debug, PartialEq)]
pub struct CsvFeatures {
    /// `rows x n_features` raw feature values, row-major, in the model's
    /// feature order.
    pub features: Vec<f32>,
    /// Number of data rows.
    pub rows: usize,
    /// The class index of every row when the file has the label column.
    pub labels: Option<Vec<u32>>,
    /// `(row, line)` where a row does not follow the line before it
    /// (empty lines, multi-line fields), from which [`CsvFeatures::line`]
    /// counts.
    jumps: Vec<(usize, u64)>,
}

impl CsvFeatures {
    /// The 1-based line of the file on which 0-based data row `row` starts
    /// (the header is line 1).
    ///
    /// ```
    /// let text = "x0,x1\n1,2\n\n3,4\n5,6\n";
    /// let names = ["x0".to_string(), "x1".to_string()];
    /// let f = vnn::csv::load_features_csv_from_reader(text.as_bytes(), "in", &names, &[], None, b',').unwrap();
    /// assert_eq!((f.line(0), f.line(1), f.line(2)), (2, 4, 5));
    /// ```
    pub fn line(&self, row: usize) -> u64 {
        let i = self.jumps.partition_point(|&(r, _)| r <= row);
        let (r, line) = if i == 0 { (0, 2) } else { self.jumps[i - 1] };
        line + (row - r) as u64
    }
}

/// Loads a training CSV: a header row, numeric feature columns and one label
/// column (integers or strings).
///
/// Features are every column but the label, in header order. The classes are
/// the distinct label values, sorted numerically when all of them are
/// integers and lexicographically otherwise; `class_names` keeps the values
/// as written.
///
/// # Errors
/// [`Error::Io`] if the file cannot be opened; [`Error::Data`] for a
/// directory, an empty file, a header without rows, a ragged row, a
/// non-numeric or non-finite feature, a missing label, fewer than two
/// classes, an unknown label column, no feature columns, invalid UTF-8, or
/// an oversized record or file.
///
/// [`Error::Io`]: crate::error::Error::Io
/// [`Error::Data`]: crate::error::Error::Data
pub fn load_training_csv(path: impl AsRef<Path>, opts: &CsvOptions) -> Result<Dataset> {
    Ok(load_training_csv_with_label(path, opts)?.0)
}

/// [`load_training_csv`], also giving the name of the label column as the
/// header names it (trimmed, as the feature names are). The file is opened
/// and read once, so a pipe or `/dev/stdin` gives its real header; the path
/// `-` reads standard input.
///
/// # Errors
/// As [`load_training_csv`].
///
/// # Example
/// ```
/// let path = std::env::temp_dir().join(format!("vnn-doc-label-{}.csv", std::process::id()));
/// std::fs::write(&path, " x , y , kind \n1,2,a\n3,4,b\n").unwrap();
/// let opts = vnn::csv::CsvOptions { label: Some(" kind".into()), ..Default::default() };
/// let (data, label) = vnn::csv::load_training_csv_with_label(&path, &opts).unwrap();
/// assert_eq!((data.feature_names().to_vec(), label.as_str()), (vec!["x".to_string(), "y".to_string()], "kind"));
/// std::fs::remove_file(&path).unwrap();
/// ```
pub fn load_training_csv_with_label(
    path: impl AsRef<Path>,
    opts: &CsvOptions,
) -> Result<(Dataset, String)> {
    let path = path.as_ref();
    let name = input_name(path);
    let file = open_input(path, &name)?;
    read_training_csv(file, &name, opts)
}

/// [`load_training_csv`] on any reader; `name` stands for the file in error
/// messages.
///
/// # Errors
/// As [`load_training_csv`], except for opening the file.
///
/// # Example
/// ```
/// use vnn::csv::{load_training_csv_from_reader, CsvOptions};
/// let text = "a,b,species\n1,2,setosa\n3,4.5,virginica\n5,6,setosa\n";
/// let d = load_training_csv_from_reader(text.as_bytes(), "iris", &CsvOptions::default()).unwrap();
/// assert_eq!(d.feature_names(), ["a", "b"]);
/// assert_eq!(d.class_names(), ["setosa", "virginica"]);
/// assert_eq!(d.labels(), [0, 1, 0]);
/// assert_eq!(d.features(), [1.0, 2.0, 3.0, 4.5, 5.0, 6.0]);
/// ```
pub fn load_training_csv_from_reader<R: Read>(
    reader: R,
    name: &str,
    opts: &CsvOptions,
) -> Result<Dataset> {
    Ok(read_training_csv(reader, name, opts)?.0)
}

/// [`load_training_csv_from_reader`] and the name of the label column.
fn read_training_csv<R: Read>(
    reader: R,
    name: &str,
    opts: &CsvOptions,
) -> Result<(Dataset, String)> {
    let mut src = Source::new(reader, name, opts.delimiter)?;
    let header = src.header()?;
    let label_idx = label_column(&src, &header, opts)?;
    let feature_idx: Vec<usize> = (0..header.len()).filter(|&i| i != label_idx).collect();
    let feature_names: Vec<String> = feature_idx.iter().map(|&i| header[i].clone()).collect();
    let label_name = header[label_idx].clone();

    let mut features = Vec::new();
    let mut labels = LabelIds::default();
    while let Some(line) = src.next_row(header.len())? {
        reserve_row(&mut features, feature_names.len(), name)?;
        for (&i, fname) in feature_idx.iter().zip(&feature_names) {
            features.push(src.number(line, i, fname)?);
        }
        labels.push(src.label(line, label_idx, &label_name)?);
    }
    if labels.ids.is_empty() {
        return Err(src.err(None, None, "no data rows after the header".into()));
    }
    if labels.names.len() < 2 {
        return Err(src.err(
            None,
            Some(&label_name),
            format!(
                "needs at least 2 classes, found 1 ('{}')",
                shown(&labels.names[0])
            ),
        ));
    }
    let (class_names, labels) = labels.into_classes();
    let data = Dataset {
        features,
        labels,
        n_features: feature_names.len(),
        n_classes: class_names.len(),
        feature_names,
        class_names,
    };
    Ok((data, label_name))
}

/// The index of the label column in `header`: the one `opts` names (its
/// name trimmed, as the header's names are), or the last; the header must
/// hold at least one feature column besides it.
fn label_column<R: Read>(src: &Source<R>, header: &[String], opts: &CsvOptions) -> Result<usize> {
    let label_idx = match &opts.label {
        None => header.len() - 1,
        Some(label) => header
            .iter()
            .position(|h| h == label.trim())
            .ok_or_else(|| {
                src.err(
                    Some(1),
                    None,
                    format!(
                        "label column '{label}' not found in the header (columns: {})",
                        list(header)
                    ),
                )
            })?,
    };
    if header.len() < 2 {
        return Err(src.err(
            Some(1),
            None,
            format!(
                "no feature columns: the header has only the label column '{}'{}",
                header[label_idx],
                delimiter_hint(header, opts.delimiter)
            ),
        ));
    }
    Ok(label_idx)
}

/// The labels of a training CSV as first-seen ids, remapped to sorted class
/// indices at the end.
#[derive(Default)]
struct LabelIds {
    /// The id of every label value seen so far.
    seen: HashMap<String, u32>,
    /// The label value of every id.
    names: Vec<String>,
    /// The id of every row.
    ids: Vec<u32>,
}

impl LabelIds {
    /// Records the label of the next row.
    fn push(&mut self, label: &str) {
        let id = match self.seen.get(label) {
            Some(&id) => id,
            None => {
                let id = self.names.len() as u32;
                self.seen.insert(label.to_string(), id);
                self.names.push(label.to_string());
                id
            }
        };
        self.ids.push(id);
    }

    /// The class names, sorted numerically when every label is an integer
    /// and lexicographically otherwise, and every row's class index.
    fn into_classes(self) -> (Vec<String>, Vec<u32>) {
        let names = self.names;
        let mut order: Vec<u32> = (0..names.len() as u32).collect();
        let numbers: Option<Vec<i128>> = names.iter().map(|s| s.parse::<i128>().ok()).collect();
        match &numbers {
            Some(n) => order.sort_by(|&a, &b| {
                (n[a as usize], &names[a as usize]).cmp(&(n[b as usize], &names[b as usize]))
            }),
            None => order.sort_by(|&a, &b| names[a as usize].cmp(&names[b as usize])),
        }
        let mut class_of_id = vec![0u32; order.len()];
        for (class, &id) in order.iter().enumerate() {
            class_of_id[id as usize] = class as u32;
        }
        let class_names = order.iter().map(|&id| names[id as usize].clone()).collect();
        let labels = self
            .ids
            .iter()
            .map(|&id| class_of_id[id as usize])
            .collect();
        (class_names, labels)
    }
}

/// Loads the inputs of a model from a CSV for prediction or evaluation.
///
/// The columns named in `feature_names` are picked by name from the header,
/// in the model's order; other columns are ignored. When `label` names a
/// column present in the header (names are compared trimmed, as the header's
/// names are), its values are mapped to class indices
/// through `class_names`; when the column is absent (or `label` is `None`),
/// `labels` is `None`.
///
/// # Errors
/// As [`load_training_csv`], plus: a feature column missing from the header
/// (the error names it) and a label value that is not one of `class_names`
/// (the error names the line and the value).
pub fn load_features_csv(
    path: impl AsRef<Path>,
    feature_names: &[String],
    class_names: &[String],
    label: Option<&str>,
    delimiter: u8,
) -> Result<CsvFeatures> {
    let path = path.as_ref();
    let name = input_name(path);
    let file = open_input(path, &name)?;
    load_features_csv_from_reader(file, &name, feature_names, class_names, label, delimiter)
}

/// [`load_features_csv`] on any reader; `name` stands for the file in error
/// messages.
///
/// # Errors
/// As [`load_features_csv`], except for opening the file.
///
/// # Example
/// ```
/// use vnn::csv::load_features_csv_from_reader;
/// let text = "id,x1,x0,y\n7,2,1,b\n8,4,3,a\n";
/// let names = ["x0".to_string(), "x1".to_string()];
/// let classes = ["a".to_string(), "b".to_string()];
/// let f = load_features_csv_from_reader(text.as_bytes(), "in", &names, &classes, Some("y"), b',').unwrap();
/// assert_eq!((f.rows, f.features), (2, vec![1.0, 2.0, 3.0, 4.0]));
/// assert_eq!(f.labels, Some(vec![1, 0]));
/// ```
pub fn load_features_csv_from_reader<R: Read>(
    reader: R,
    name: &str,
    feature_names: &[String],
    class_names: &[String],
    label: Option<&str>,
    delimiter: u8,
) -> Result<CsvFeatures> {
    let mut src = Source::new(reader, name, delimiter)?;
    let header = src.header()?;
    if feature_names.is_empty() {
        return Err(src.err(Some(1), None, "the model has no feature columns".into()));
    }
    let picked = feature_columns(&src, &header, feature_names, delimiter)?;
    let label_col = label
        .map(str::trim)
        .and_then(|l| header.iter().position(|h| h == l).map(|i| (i, l)));
    let class_index: HashMap<&str, u32> = class_names
        .iter()
        .enumerate()
        .map(|(i, c)| (c.as_str(), i as u32))
        .collect();
    let mut features = Vec::new();
    let mut labels = Vec::new();
    let (mut rows, mut jumps) = (0usize, Vec::new());
    while let Some(line) = src.next_row(header.len())? {
        if line != 2 + rows as u64
            && jumps
                .last()
                .is_none_or(|&(r, l)| l + (rows - r) as u64 != line)
        {
            jumps.push((rows, line));
        }
        reserve_row(&mut features, feature_names.len(), name)?;
        for (&i, fname) in picked.iter().zip(feature_names) {
            features.push(src.number(line, i, fname)?);
        }
        if let Some((i, lname)) = label_col {
            let value = src.label(line, i, lname)?;
            match class_index.get(value) {
                Some(&c) => labels.push(c),
                None => {
                    return Err(src.err(
                        Some(line),
                        Some(lname),
                        format!(
                            "unknown class '{}' (the model's classes: {})",
                            shown(value),
                            list(class_names)
                        ),
                    ))
                }
            }
        }
        rows += 1;
    }
    if rows == 0 {
        return Err(src.err(None, None, "no data rows after the header".into()));
    }
    Ok(CsvFeatures {
        features,
        rows,
        labels: label_col.map(|_| labels),
        jumps,
    })
}

/// The index in `header` of every one of `feature_names`, in that order.
fn feature_columns<R: Read>(
    src: &Source<R>,
    header: &[String],
    feature_names: &[String],
    delimiter: u8,
) -> Result<Vec<usize>> {
    feature_names
        .iter()
        .map(|f| {
            header.iter().position(|h| h == f.trim()).ok_or_else(|| {
                src.err(
                    Some(1),
                    Some(f),
                    format!(
                        "feature column not found in the header (columns: {}){}",
                        list(header),
                        delimiter_hint(header, delimiter)
                    ),
                )
            })
        })
        .collect()
}

/// Makes room in `features` for one more row of `width` values, doubling
/// its capacity when full, after checking the doubled buffer (and the old
/// one, while it is copied) fits the memory budget ([`crate::budget`]).
fn reserve_row(features: &mut Vec<f32>, width: usize, name: &str) -> Result<()> {
    if features.capacity() - features.len() >= width {
        return Ok(());
    }
    let want = features
        .len()
        .saturating_add(width)
        .max(features.capacity().saturating_mul(2))
        .max(1024);
    let needed = crate::budget::bytes(&[want as u64, 4 + 4]);
    let what = format!(
        "{name}: the values of more than {} rows",
        features.len() / width.max(1)
    );
    crate::budget::check(&what, needed, "give fewer rows or columns")?;
    features.reserve_exact(want - features.len());
    Ok(())
}

/// A list of names for an error message: the first 10, then a count.
fn list(names: &[String]) -> String {
    const MAX: usize = 10;
    let mut out: Vec<String> = names.iter().take(MAX).map(|n| shown(n)).collect();
    if names.len() > MAX {
        out.push(format!("... ({} in all)", names.len()));
    }
    out.join(", ")
}

/// A hint for a one-column header that holds another common delimiter: the
/// file was probably written with it.
fn delimiter_hint(header: &[String], delimiter: u8) -> String {
    if header.len() != 1 {
        return String::new();
    }
    [b';', b',', b'\t', b'|']
        .into_iter()
        .filter(|&d| d != delimiter)
        .find(|&d| header[0].contains(d as char))
        .map_or(String::new(), |d| {
            let shown = if d == b'\t' {
                "tab".to_string()
            } else {
                (d as char).to_string()
            };
            format!(" (the header contains '{shown}': set the delimiter to '{shown}')")
        })
}
