//! File formats: CSV loading (every malformed input gives its exact
//! message), model files (bit-exact round trip; every corrupt file
//! rejected with its message), atomic writes and TensorBoard event files.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use vnn::csv::{
    load_features_csv, load_features_csv_from_reader, load_training_csv,
    load_training_csv_from_reader, CsvOptions,
};
use vnn::data::{spiral, Standardizer};
use vnn::model::{Init, Model};
use vnn::modelfile::ModelFile;
use vnn::tensorboard::{histogram, read_records, EventWriter, HISTOGRAM_BUCKETS};
use vnn::Error;

fn data(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(rel)
}

/// A fresh, empty scratch directory for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vnn-formats-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn opts(delimiter: u8) -> CsvOptions {
    CsvOptions {
        label: None,
        delimiter,
    }
}

/// The `(line, column, msg)` of a data error; panics on anything else.
fn data_err<T: std::fmt::Debug>(r: vnn::Result<T>) -> (Option<u64>, Option<String>, String) {
    match r {
        Err(Error::Data {
            line, column, msg, ..
        }) => (line, column, msg),
        other => panic!("expected a data error, got {other:?}"),
    }
}

fn train_err(rel: &str) -> (Option<u64>, Option<String>, String) {
    data_err(load_training_csv(data(rel), &CsvOptions::default()))
}

fn col(c: &str) -> Option<String> {
    Some(c.to_string())
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

// ---------------------------------------------------------------- CSV: good

#[test]
fn csv_comma_with_integer_labels() {
    let d = load_training_csv(data("csv/comma_int_labels.csv"), &opts(b',')).unwrap();
    assert_eq!(d.feature_names(), ["x0", "x1"]);
    assert_eq!(d.class_names(), ["0", "1", "2"]);
    assert_eq!(d.labels(), [0, 1, 2]);
    assert_eq!(d.features(), [0.5, 1.5, -1.0, 2e-3, 3.0, 4.0]);
    assert_eq!((d.n_features(), d.n_classes()), (2, 3));
}

#[test]
fn csv_semicolon_delimiter() {
    let d = load_training_csv(data("csv/semicolon.csv"), &opts(b';')).unwrap();
    assert_eq!(d.feature_names(), ["a", "b"]);
    assert_eq!(d.class_names(), ["setosa", "versicolor", "virginica"]);
    assert_eq!(d.labels(), [0, 2, 1]);
    assert_eq!(d.features(), [1.5, 2.0, 3.0, 4.0, 5.0, 6.0]);
    // The delimiter is never guessed: read with commas, each line is one
    // field; the error points at the delimiter the header seems to use.
    let (line, column, msg) = train_err("csv/semicolon.csv");
    assert_eq!((line, column), (Some(1), None));
    assert_eq!(
        msg,
        "no feature columns: the header has only the label column 'a;b;species' \
         (the header contains ';': set the delimiter to ';')"
    );
}

#[test]
fn csv_crlf_bom_and_quotes() {
    for file in ["csv/crlf.csv", "csv/bom.csv"] {
        let d = load_training_csv(data(file), &opts(b',')).unwrap();
        assert_eq!(d.feature_names(), ["x0", "x1"], "{file}");
        assert_eq!(d.class_names(), ["a", "b"], "{file}");
        assert_eq!(d.features(), [1.0, 2.0, 3.0, 4.0], "{file}");
        assert_eq!(d.labels(), [0, 1], "{file}");
    }
    let d = load_training_csv(data("csv/quoted.csv"), &opts(b',')).unwrap();
    assert_eq!(d.feature_names(), ["first, col", "x1"]);
    assert_eq!(d.class_names(), ["Iris \"setosa\"", "plain, b"]);
    assert_eq!(d.features(), [1.5, 2.0, 3.0, 4.0]);
}

#[test]
fn csv_integer_labels_sort_numerically_and_keep_their_text() {
    let d = load_training_csv(data("csv/int_labels_numeric_order.csv"), &opts(b',')).unwrap();
    // Lexicographic order would be -3, 10, 100, 9.
    assert_eq!(d.class_names(), ["-3", "9", "10", "100"]);
    assert_eq!(d.labels(), [2, 1, 3, 0, 1]);
}

#[test]
fn csv_label_column_by_name() {
    let o = CsvOptions {
        label: Some("label".into()),
        delimiter: b',',
    };
    let d = load_training_csv(data("csv/label_first_named.csv"), &o).unwrap();
    assert_eq!(d.feature_names(), ["f1", "f2"]);
    assert_eq!(d.class_names(), ["a", "b", "c"]);
    assert_eq!(d.labels(), [1, 0, 2]);
    assert_eq!(d.features(), [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
}

#[test]
fn csv_empty_lines_are_skipped_and_line_numbers_stay_right() {
    let text = "x,y\n\n1,a\n\n\n2,b\n";
    let d = load_training_csv_from_reader(text.as_bytes(), "mem", &opts(b',')).unwrap();
    assert_eq!(d.features(), [1.0, 2.0]);
    let text = "x,y\r\n\r\n1,a\r\n\r\n\r\n2\r\n";
    let (line, _, msg) = data_err(load_training_csv_from_reader(
        text.as_bytes(),
        "mem",
        &opts(b','),
    ));
    assert_eq!((line, msg.as_str()), (Some(6), "expected 2 fields, got 1"));
    // A quoted field spanning lines: the record starts on line 2.
    let text = "x,y\n\"1\nz\",a\n2,b\n";
    let (line, column, msg) = data_err(load_training_csv_from_reader(
        text.as_bytes(),
        "mem",
        &opts(b','),
    ));
    assert_eq!((line, column), (Some(2), col("x")));
    assert_eq!(msg, "'1\nz' is not a number");
}

#[test]
fn csv_features_picked_by_name() {
    let names = strings(&["x0", "x1"]);
    let classes = strings(&["a", "b"]);
    let f = load_features_csv(
        data("csv/predict_by_name.csv"),
        &names,
        &classes,
        Some("y"),
        b',',
    )
    .unwrap();
    assert_eq!(f.rows, 3);
    assert_eq!(f.features, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    assert_eq!(f.labels, Some(vec![1, 0, 1]));
    // No label column in the file (or none asked for): no labels.
    let f = load_features_csv(
        data("csv/predict_by_name.csv"),
        &names,
        &classes,
        Some("z"),
        b',',
    )
    .unwrap();
    assert_eq!(f.labels, None);
    let f = load_features_csv(
        data("csv/predict_by_name.csv"),
        &names,
        &classes,
        None,
        b',',
    )
    .unwrap();
    assert_eq!((f.rows, f.labels), (3, None));
}

// ----------------------------------------------------------------- CSV: bad

#[test]
fn csv_missing_file_and_directory() {
    match load_training_csv(data("no_such_file.csv"), &CsvOptions::default()) {
        Err(Error::Io { path, source }) => {
            assert_eq!(path, data("no_such_file.csv"));
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
        }
        other => panic!("{other:?}"),
    }
    let (line, column, msg) = data_err(load_training_csv(data("bad"), &CsvOptions::default()));
    assert_eq!((line, column), (None, None));
    assert_eq!(msg, "is a directory, not a CSV file");
}

#[test]
fn csv_every_bad_file_gives_its_message() {
    let cases: &[(&str, Option<u64>, Option<&str>, &str)] = &[
        (
            "bad/empty.csv",
            None,
            None,
            "empty file: expected a header row",
        ),
        (
            "bad/header_only.csv",
            None,
            None,
            "no data rows after the header",
        ),
        ("bad/ragged.csv", Some(3), None, "expected 3 fields, got 2"),
        (
            "bad/non_numeric.csv",
            Some(3),
            Some("x1"),
            "'abc' is not a number",
        ),
        (
            "bad/nan_feature.csv",
            Some(2),
            Some("x1"),
            "'NaN' is not a finite number",
        ),
        (
            "bad/inf_feature.csv",
            Some(3),
            Some("x1"),
            "'inf' is not a finite number",
        ),
        (
            "bad/empty_feature.csv",
            Some(2),
            Some("x1"),
            "missing value (empty field)",
        ),
        (
            "bad/missing_label.csv",
            Some(3),
            Some("y"),
            "missing label (empty field)",
        ),
        (
            "bad/single_class.csv",
            None,
            Some("y"),
            "needs at least 2 classes, found 1 ('a')",
        ),
        (
            "bad/label_only.csv",
            Some(1),
            None,
            "no feature columns: the header has only the label column 'y'",
        ),
        ("bad/invalid_utf8.csv", Some(2), Some("x1"), "invalid UTF-8"),
        (
            "bad/duplicate_column.csv",
            Some(1),
            Some("x0"),
            "duplicate column name",
        ),
    ];
    for &(file, line, column, msg) in cases {
        let got = train_err(file);
        assert_eq!(
            got,
            (line, column.map(str::to_string), msg.to_string()),
            "{file}"
        );
    }
    // The full message names the file, the line and the column.
    let err = load_training_csv(data("bad/non_numeric.csv"), &CsvOptions::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}, line 3, column 'x1': 'abc' is not a number",
            data("bad/non_numeric.csv").display()
        )
    );
}

#[test]
fn csv_unknown_label_column() {
    let o = CsvOptions {
        label: Some("species".into()),
        delimiter: b',',
    };
    let got = data_err(load_training_csv(data("bad/ragged.csv"), &o));
    assert_eq!(
        got,
        (
            Some(1),
            None,
            "label column 'species' not found in the header (columns: x0, x1, y)".into()
        )
    );
}

#[test]
fn csv_invalid_utf8_in_header() {
    let got = data_err(load_training_csv_from_reader(
        &b"x0,\xc3\x28,y\n1,2,a\n"[..],
        "mem",
        &opts(b','),
    ));
    assert_eq!(
        got,
        (
            Some(1),
            None,
            "invalid UTF-8 in the name of column 2".into()
        )
    );
}

#[test]
fn csv_long_values_are_cut_in_messages() {
    let long = "z".repeat(100);
    let text = format!("x,y\n{long},a\n");
    let (_, _, msg) = data_err(load_training_csv_from_reader(
        text.as_bytes(),
        "mem",
        &opts(b','),
    ));
    assert_eq!(msg, format!("'{}...' is not a number", "z".repeat(40)));
}

#[test]
fn csv_huge_record_is_refused_before_it_is_buffered() {
    // 3 MiB in one field: refused by the reader's byte budget.
    let mut big = b"x,y\n1,a\n2,b\n3,".to_vec();
    big.extend(std::iter::repeat_n(b'c', 3 << 20));
    big.extend(b"\n4,a\n");
    let got = data_err(load_training_csv_from_reader(&big[..], "mem", &opts(b',')));
    assert_eq!(
        got,
        (
            Some(4),
            None,
            "record is longer than the limit of 1048576 bytes".into()
        )
    );
    // Just over 1 MiB: refused by the per-record check.
    let mut big = b"x,y\n1,a\n2,b\n3,".to_vec();
    big.extend(std::iter::repeat_n(b'c', (1 << 20) + 10));
    big.extend(b"\n4,a\n");
    let got = data_err(load_training_csv_from_reader(&big[..], "mem", &opts(b',')));
    assert_eq!(got.0, Some(4));
    assert_eq!(got.2, "record is longer than the limit of 1048576 bytes");
    // An unterminated quote swallowing the rest of a long input.
    let mut big = b"x,y\n1,\"a\n".to_vec();
    big.extend(std::iter::repeat_n(b'1', 2 << 20));
    let got = data_err(load_training_csv_from_reader(&big[..], "mem", &opts(b',')));
    assert_eq!(
        (got.0, got.2.as_str()),
        (Some(2), "record is longer than the limit of 1048576 bytes")
    );
}

#[test]
fn csv_bad_delimiter_is_a_setting_error() {
    match load_training_csv_from_reader(&b"a,b\n"[..], "mem", &opts(b'"')) {
        Err(e @ Error::Setting { .. }) => assert_eq!(
            e.to_string(),
            "invalid setting: the CSV delimiter must be neither a quote nor a line end, got '\"'"
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn csv_features_errors() {
    let names = strings(&["x0", "x1"]);
    let classes = strings(&["a", "b"]);
    let got = data_err(load_features_csv(
        data("bad/unknown_class.csv"),
        &names,
        &classes,
        Some("y"),
        b',',
    ));
    assert_eq!(
        got,
        (
            Some(3),
            col("y"),
            "unknown class 'z' (the model's classes: a, b)".into()
        )
    );
    let got = data_err(load_features_csv(
        data("csv/predict_by_name.csv"),
        &strings(&["x0", "x2"]),
        &classes,
        Some("y"),
        b',',
    ));
    assert_eq!(
        got,
        (
            Some(1),
            col("x2"),
            "feature column not found in the header (columns: id, x1, extra, x0, y)".into()
        )
    );
    let got = data_err(load_features_csv(
        data("bad/missing_label.csv"),
        &names,
        &classes,
        Some("y"),
        b',',
    ));
    assert_eq!(
        got,
        (Some(3), col("y"), "missing label (empty field)".into())
    );
    let got = data_err(load_features_csv(
        data("bad/header_only.csv"),
        &names,
        &classes,
        Some("y"),
        b',',
    ));
    assert_eq!(got, (None, None, "no data rows after the header".into()));
    let got = data_err(load_features_csv(
        data("bad/ragged.csv"),
        &names,
        &classes,
        None,
        b',',
    ));
    assert_eq!(got, (Some(3), None, "expected 3 fields, got 2".into()));
    // Unused columns are not parsed.
    let f = load_features_csv_from_reader(
        &b"x0,junk,x1\n1,\xff\xfe,2\n"[..],
        "mem",
        &names,
        &classes,
        None,
        b',',
    )
    .unwrap();
    assert_eq!(f.features, [1.0, 2.0]);
}

// ------------------------------------------------------------ model files

fn trained_model() -> Model {
    let data = spiral(30, 3, 5);
    let mut model = Model::new(&[2, 8, 3], Init::He, 11).unwrap();
    // Distinct, non-round values everywhere (biases included).
    for (i, p) in model.params_mut().iter_mut().enumerate() {
        *p += (i as f32 * 0.377).sin() * 1e-3;
    }
    model
        .with_names(strings(&["x0", "x1"]), strings(&["red", "green", "blue"]))
        .unwrap()
        .with_standardizer(Standardizer::fit(data.features(), 2))
        .unwrap()
}

fn extra() -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            "training_command".to_string(),
            "vnn train --data spiral.csv --hidden 8".to_string(),
        ),
        ("note".to_string(), "{\"json\": [1, 2]}".to_string()),
    ])
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn model_round_trip_is_bit_exact_with_metadata() {
    let model = trained_model();
    let dir = scratch("roundtrip");
    let path = dir.join("model.safetensors");
    ModelFile {
        model: model.clone(),
        metadata: extra(),
    }
    .save(&path)
    .unwrap();
    assert!(!dir.join(".model.safetensors.tmp").exists());
    let (back, meta) = ModelFile::load(&path)
        .map(|f| (f.model, f.metadata))
        .unwrap();
    assert_eq!(bits(back.params()), bits(model.params()));
    let (s, t) = (model.standardizer().unwrap(), back.standardizer().unwrap());
    assert_eq!(bits(s.mean()), bits(t.mean()));
    assert_eq!(bits(s.scale()), bits(t.scale()));
    assert_eq!(back, model);
    assert_eq!(meta, extra());
    assert_eq!(Model::load(&path).unwrap(), model);
    // Deterministic bytes.
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(
        bytes,
        ModelFile {
            model: model.clone(),
            metadata: extra()
        }
        .to_bytes()
        .unwrap()
    );
    // Linear model without standardizer.
    let linear = Model::new(&[4, 2], Init::Small, 3).unwrap();
    let b = ModelFile {
        model: linear.clone(),
        metadata: BTreeMap::new(),
    }
    .to_bytes()
    .unwrap();
    let (back, meta) = ModelFile::from_bytes(&b, "mem")
        .map(|f| (f.model, f.metadata))
        .unwrap();
    assert_eq!(back, linear);
    assert!(meta.is_empty());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn model_file_is_plain_safetensors() {
    let model = trained_model();
    let bytes = ModelFile {
        model: model.clone(),
        metadata: extra(),
    }
    .to_bytes()
    .unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut names = st.names();
    names.sort();
    assert_eq!(
        names,
        [
            "layers.0.bias",
            "layers.0.weight",
            "layers.1.bias",
            "layers.1.weight"
        ]
    );
    let w = st.tensor("layers.0.weight").unwrap();
    assert_eq!(
        (w.dtype(), w.shape()),
        (safetensors::Dtype::F32, &[2, 8][..])
    );
    let first = f32::from_le_bytes(w.data()[..4].try_into().unwrap());
    assert_eq!(first.to_bits(), model.layer(0).0[0].to_bits());
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let meta = meta.metadata().clone().unwrap();
    assert_eq!(meta["format"], "vnn-model");
    assert_eq!(meta["format_version"], "1");
    assert_eq!(meta["architecture"], "mlp");
    assert_eq!(meta["sizes"], "[2,8,3]");
    assert_eq!(meta["activation"], "relu");
    assert_eq!(meta["feature_names"], "[\"x0\",\"x1\"]");
    assert_eq!(meta["class_names"], "[\"red\",\"green\",\"blue\"]");
    assert!(meta["standardize"].starts_with("{\"mean\":["));
    assert_eq!(meta["training_command"], extra()["training_command"]);
}

#[test]
fn model_save_refuses_reserved_keys_and_non_finite_values() {
    let model = trained_model();
    let mut bad_extra = extra();
    bad_extra.insert("format".into(), "x".into());
    let err = ModelFile {
        model: model.clone(),
        metadata: bad_extra.clone(),
    }
    .to_bytes()
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "<model>: metadata key 'format' is reserved for the model format"
    );
    let mut nan = model.clone();
    let i = nan.layout().layers()[1].bias + 2;
    nan.params_mut()[i] = f32::NAN;
    let err = ModelFile {
        model: nan.clone(),
        metadata: BTreeMap::new(),
    }
    .to_bytes()
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "<model>, tensor 'layers.1.bias': cannot save: value 2 is NaN"
    );
}

/// The tensors and metadata of a valid file, to edit and re-serialize.
struct Parts {
    tensors: Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)>,
    meta: HashMap<String, String>,
}

impl Parts {
    fn of(bytes: &[u8]) -> Parts {
        let st = safetensors::SafeTensors::deserialize(bytes).unwrap();
        let tensors = st
            .tensors()
            .into_iter()
            .map(|(n, t)| (n, t.dtype(), t.shape().to_vec(), t.data().to_vec()))
            .collect();
        let (_, meta) = safetensors::SafeTensors::read_metadata(bytes).unwrap();
        Parts {
            tensors,
            meta: meta.metadata().clone().unwrap(),
        }
    }

    fn valid() -> Parts {
        Parts::of(
            &ModelFile {
                model: trained_model(),
                metadata: extra(),
            }
            .to_bytes()
            .unwrap(),
        )
    }

    fn bytes(&self) -> Vec<u8> {
        let views: Vec<(String, safetensors::tensor::TensorView)> = self
            .tensors
            .iter()
            .map(|(n, d, s, b)| {
                (
                    n.clone(),
                    safetensors::tensor::TensorView::new(*d, s.clone(), b).unwrap(),
                )
            })
            .collect();
        let meta = if self.meta.is_empty() {
            None
        } else {
            Some(self.meta.clone())
        };
        safetensors::serialize(views, meta).unwrap()
    }

    fn remove(&mut self, name: &str) {
        self.tensors.retain(|(n, ..)| n != name);
    }

    fn set(&mut self, name: &str, dtype: safetensors::Dtype, shape: &[usize], fill: f32) {
        self.remove(name);
        let n: usize = shape.iter().product();
        let data = match dtype {
            safetensors::Dtype::F64 => (0..n).flat_map(|_| (fill as f64).to_le_bytes()).collect(),
            _ => (0..n).flat_map(|_| fill.to_le_bytes()).collect(),
        };
        self.tensors
            .push((name.to_string(), dtype, shape.to_vec(), data));
    }

    /// The `(tensor, msg)` of the model error this file gives.
    fn err(&self) -> (Option<String>, String) {
        model_err(ModelFile::from_bytes(&self.bytes(), "bad.safetensors").map(|f| f.model))
    }
}

fn model_err<T: std::fmt::Debug>(r: vnn::Result<T>) -> (Option<String>, String) {
    match r {
        Err(Error::Model { path, tensor, msg }) => {
            assert_eq!(path, std::path::Path::new("bad.safetensors"));
            (tensor, msg)
        }
        other => panic!("expected a model error, got {other:?}"),
    }
}

#[test]
fn model_truncated_and_bad_header_lengths() {
    let good = ModelFile {
        model: trained_model(),
        metadata: extra(),
    }
    .to_bytes()
    .unwrap();
    let header_len = u64::from_le_bytes(good[..8].try_into().unwrap());
    let data_len = good.len() - 8 - header_len as usize;
    let cases: Vec<(Vec<u8>, String)> = vec![
        (
            good[..5].to_vec(),
            "truncated: 5 bytes, shorter than the 8-byte header length of a safetensors file".into(),
        ),
        (
            good[..40].to_vec(),
            format!(
                "the header length {header_len} exceeds the 32 bytes after it: truncated or not a safetensors file"
            ),
        ),
        (
            good[..good.len() - 3].to_vec(),
            format!(
                "the tensors end at data byte {data_len} but the file has {} bytes of data: truncated, or offsets out of bounds",
                data_len - 3
            ),
        ),
        (
            {
                let mut b = good.clone();
                b[..8].copy_from_slice(&u64::MAX.to_le_bytes());
                b
            },
            format!(
                "the header length {} exceeds the {} bytes after it: truncated or not a safetensors file",
                u64::MAX,
                good.len() - 8
            ),
        ),
        (
            {
                // Valid length, header bytes that are not JSON.
                let mut b = good.clone();
                b[8] = b'X';
                b
            },
            "not a valid safetensors file: invalid JSON in header: expected value at line 1 column 1"
                .into(),
        ),
        (
            {
                let mut b = good.clone();
                b.extend_from_slice(&[0; 4]);
                b
            },
            format!(
                "the tensors end at data byte {data_len} but the file has {} bytes of data: trailing bytes",
                data_len + 4
            ),
        ),
    ];
    for (bytes, msg) in cases {
        assert_eq!(
            model_err(ModelFile::from_bytes(&bytes, "bad.safetensors").map(|f| f.model)),
            (None, msg)
        );
    }
    assert_eq!(
        model_err(ModelFile::from_bytes(&[], "bad.safetensors").map(|f| f.model)).1,
        "truncated: 0 bytes, shorter than the 8-byte header length of a safetensors file"
    );
}

#[test]
fn model_out_of_bounds_and_overlapping_offsets() {
    let header = |h: &str| {
        let mut h = h.as_bytes().to_vec();
        h.resize(h.len().next_multiple_of(8), b' ');
        let mut b = (h.len() as u64).to_le_bytes().to_vec();
        b.extend(h);
        b.extend([0u8; 16]);
        b
    };
    let out_of_bounds = header(
        r#"{"__metadata__":{"format":"vnn-model"},"layers.0.weight":{"dtype":"F32","shape":[2,2],"data_offsets":[0,1000]}}"#,
    );
    assert_eq!(
        model_err(ModelFile::from_bytes(&out_of_bounds, "bad.safetensors").map(|f| f.model)),
        (
            None,
            "not a valid safetensors file: invalid shape, data type, or offset for tensor".into()
        )
    );
    let overlapping = header(
        r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[4],"data_offsets":[4,20]}}"#,
    );
    assert_eq!(
        model_err(ModelFile::from_bytes(&overlapping, "bad.safetensors").map(|f| f.model)),
        (
            Some("b".into()),
            "data offsets overlap another tensor or leave a gap (tensors must follow each other from offset 0)".into()
        )
    );
    let huge_shape =
        header(r#"{"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,16]}}"#);
    assert_eq!(
        model_err(ModelFile::from_bytes(&huge_shape, "bad.safetensors").map(|f| f.model)).1,
        "not a valid safetensors file: overflow computing buffer size from shape and/or element type"
    );
}

#[test]
fn model_not_a_vnn_model() {
    let mut p = Parts::valid();
    p.meta.clear();
    assert_eq!(
        p.err(),
        (
            None,
            "not a vnn model: the file has no metadata (expected format = \"vnn-model\")".into()
        )
    );
    let mut p = Parts::valid();
    p.meta.insert("format".into(), "pt".into());
    assert_eq!(
        p.err().1,
        "not a vnn model: format is \"pt\", expected \"vnn-model\""
    );
    let mut p = Parts::valid();
    p.meta.remove("format");
    assert_eq!(
        p.err().1,
        "not a vnn model: the metadata has no \"format\" entry (expected \"vnn-model\")"
    );
}

#[test]
fn model_format_versions() {
    let mut p = Parts::valid();
    p.meta.insert("format_version".into(), "2".into());
    assert_eq!(
        p.err().1,
        "format version 2 is newer than this vnn supports (1); upgrade vnn to read this model"
    );
    for v in ["0", "one", "-1", ""] {
        p.meta.insert("format_version".into(), v.into());
        assert_eq!(
            p.err().1,
            format!("format_version \"{v}\" is not a version number")
        );
    }
    p.meta.remove("format_version");
    assert_eq!(p.err().1, "missing metadata entry \"format_version\"");
}

#[test]
fn model_bad_tensors() {
    use safetensors::Dtype::{F32, F64, I32};
    let t = |s: &str| Some(s.to_string());

    let mut p = Parts::valid();
    p.set("layers.0.weight", F64, &[2, 8], 0.5);
    assert_eq!(
        p.err(),
        (t("layers.0.weight"), "dtype is F64, expected F32".into())
    );
    let mut p = Parts::valid();
    p.set("layers.1.bias", I32, &[3], 0.0);
    assert_eq!(
        p.err(),
        (t("layers.1.bias"), "dtype is I32, expected F32".into())
    );

    let mut p = Parts::valid();
    p.remove("layers.1.bias");
    assert_eq!(p.err(), (t("layers.1.bias"), "missing tensor".into()));
    let mut p = Parts::valid();
    p.remove("layers.1.bias");
    p.remove("layers.1.weight");
    assert_eq!(
        p.err(),
        (
            t("layers.1.weight"),
            "missing tensor (metadata sizes [2, 8, 3] describe 2 layers)".into()
        )
    );
    let mut p = Parts::valid();
    p.tensors.clear();
    assert_eq!(
        p.err(),
        (
            t("layers.0.weight"),
            "missing tensor (metadata sizes [2, 8, 3] describe 2 layers)".into()
        )
    );

    let mut p = Parts::valid();
    p.set("layers.2.weight", F32, &[3, 4], 0.1);
    p.set("layers.2.bias", F32, &[4], 0.1);
    assert_eq!(
        p.err(),
        (
            t("layers.2.weight"),
            "unexpected tensor: the file has 3 layers but metadata sizes [2, 8, 3] describe 2"
                .into()
        )
    );
    let mut p = Parts::valid();
    p.set("layers.01.weight", F32, &[1], 0.0);
    assert_eq!(
        p.err(),
        (
            t("layers.01.weight"),
            "unexpected tensor (a vnn model has only layers.{i}.weight and layers.{i}.bias)".into()
        )
    );
    let mut p = Parts::valid();
    p.set("optimizer.m", F32, &[4], 0.0);
    assert_eq!(p.err().0, t("optimizer.m"));

    let mut p = Parts::valid();
    p.set("layers.1.weight", F32, &[7, 3], 0.1);
    assert_eq!(
        p.err(),
        (
            t("layers.1.weight"),
            "shape [7, 3] does not chain: layer 0 has 8 outputs but layer 1 has 7 inputs".into()
        )
    );
    let mut p = Parts::valid();
    p.set("layers.0.weight", F32, &[16], 0.1);
    assert_eq!(
        p.err(),
        (
            t("layers.0.weight"),
            "shape [16] is not [n_in, n_out]".into()
        )
    );
    let mut p = Parts::valid();
    p.set("layers.0.bias", F32, &[7], 0.1);
    assert_eq!(
        p.err(),
        (
            t("layers.0.bias"),
            "shape [7] does not match the weight's 8 outputs".into()
        )
    );
    let mut p = Parts::valid();
    p.set("layers.1.weight", F32, &[8, 4], 0.1);
    p.set("layers.1.bias", F32, &[4], 0.1);
    assert_eq!(
        p.err(),
        (
            t("layers.1.weight"),
            "shape [8, 4] disagrees with metadata sizes [2, 8, 3] (expected [8, 3])".into()
        )
    );

    for bad in [f32::NAN, f32::INFINITY] {
        let mut p = Parts::valid();
        p.set("layers.1.bias", F32, &[3], bad);
        assert_eq!(
            p.err(),
            (
                t("layers.1.bias"),
                format!("value 0 is {bad}, not a finite number")
            )
        );
    }
}

#[test]
fn model_bad_metadata() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "sizes",
            "[2, 8",
            "metadata entry \"sizes\" is not a JSON array of layer widths: EOF while parsing a list at line 1 column 5",
        ),
        (
            "sizes",
            "[2, -8, 3]",
            "metadata entry \"sizes\" is not a JSON array of layer widths: invalid value: integer `-8`, expected usize at line 1 column 6",
        ),
        (
            "sizes",
            "[2, 0, 3]",
            "metadata sizes: layer width 1 must be positive, got 0 in [2, 0, 3]",
        ),
        (
            "sizes",
            "[2]",
            "metadata sizes: a network's layer widths must be at least two (an input and an output width), got [2]",
        ),
        (
            "architecture",
            "linear",
            "architecture \"linear\" does not match sizes [2, 8, 3] (expected \"mlp\")",
        ),
        ("architecture", "cnn", "unknown architecture \"cnn\""),
        (
            "activation",
            "gelu",
            "metadata entry \"activation\" is \"gelu\", expected one of \"relu\", \"tanh\", \"sigmoid\", \"leaky-relu\"",
        ),
        (
            "activation",
            "ReLU",
            "metadata entry \"activation\" is \"ReLU\", expected one of \"relu\", \"tanh\", \"sigmoid\", \"leaky-relu\"",
        ),
        (
            "feature_names",
            "[\"a\"]",
            "feature_names has 1 names but the first layer has 2 inputs",
        ),
        (
            "feature_names",
            "[\"a\", \"a\"]",
            "feature_names has the name 'a' twice",
        ),
        (
            "class_names",
            "[\"a\", \"b\", \"c\", \"d\"]",
            "class_names has 4 names but the last layer has 3 outputs",
        ),
        (
            "class_names",
            "\"a\"",
            "metadata entry \"class_names\" is not a JSON array of strings: invalid type: string \"a\", expected a sequence at line 1 column 3",
        ),
        (
            "standardize",
            "{\"mean\": [0, 0]}",
            "metadata entry \"standardize\" is not null or a JSON object {\"mean\": [..], \"scale\": [..]}: missing field `scale` at line 1 column 16",
        ),
        (
            "standardize",
            "{\"mean\": [0], \"scale\": [1]}",
            "standardize: 1 means and 1 scales for 2 features",
        ),
        (
            "standardize",
            "{\"mean\": [0, 0], \"scale\": [1, 0]}",
            "standardize: scale 1 is 0, not a finite non-zero number",
        ),
        // Non-zero but subnormal: dividing by it overflows to infinity.
        (
            "standardize",
            "{\"mean\": [0, 0], \"scale\": [1, 1e-45]}",
            "standardize: scale 1 is 1e-45, not at least 1.1754944e-38 (the smallest normal f32)",
        ),
        (
            "standardize",
            "{\"mean\": [0, 0], \"scale\": [-2, 1]}",
            "standardize: scale 0 is -2.0, not at least 1.1754944e-38 (the smallest normal f32)",
        ),
        (
            "standardize",
            "{\"mean\": [0, 1e300], \"scale\": [1, 1]}",
            "standardize: mean 1 is inf",
        ),
    ];
    for &(key, value, msg) in cases {
        let mut p = Parts::valid();
        p.meta.insert(key.into(), value.into());
        assert_eq!(p.err(), (None, msg.to_string()), "{key} = {value}");
    }
    // Every entry but `activation` must be there (see
    // `activations::a_file_without_activation_is_relu`).
    for key in vnn::modelfile::RESERVED_KEYS.iter().skip(2) {
        if *key == "activation" {
            continue;
        }
        let mut p = Parts::valid();
        p.meta.remove(*key);
        assert_eq!(
            p.err(),
            (None, format!("missing metadata entry \"{key}\"")),
            "{key}"
        );
    }
    // `standardize: null` is a model without standardization.
    let mut p = Parts::valid();
    p.meta.insert("standardize".into(), "null".into());
    let m = ModelFile::from_bytes(&p.bytes(), "ok")
        .map(|f| f.model)
        .unwrap();
    assert_eq!(m.standardizer(), None);
}

#[test]
fn model_file_errors() {
    let dir = scratch("model-files");
    match Model::load(dir.join("missing.safetensors")) {
        Err(Error::Io { source, .. }) => assert_eq!(source.kind(), std::io::ErrorKind::NotFound),
        other => panic!("{other:?}"),
    }
    let err = Model::load(&dir).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("{}: is a directory, not a model file", dir.display())
    );
    let csv = data("csv/crlf.csv");
    let err = Model::load(&csv).unwrap_err();
    assert!(
        err.to_string()
            .starts_with(&format!("{}: the header length ", csv.display())),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn atomic_write_replaces_and_cleans_up() {
    let dir = scratch("atomic");
    let path = dir.join("out.bin");
    vnn::fsutil::write_atomic(&path, b"one").unwrap();
    vnn::fsutil::write_atomic(&path, b"two").unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"two");
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["out.bin"]);
    // A missing directory: an I/O error naming the temporary file, no file left.
    let err = vnn::fsutil::write_atomic(dir.join("nope/out.bin"), b"x").unwrap_err();
    match err {
        Error::Io { path, .. } => {
            // The temporary file of this write: `.out.bin.<pid>.<n>.tmp`.
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let prefix = format!(".out.bin.{}.", std::process::id());
            assert_eq!(path.parent(), Some(dir.join("nope").as_path()));
            assert!(
                name.starts_with(&prefix) && name.ends_with(".tmp"),
                "{name}"
            );
        }
        other => panic!("{other:?}"),
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

// ------------------------------------------------------------- TensorBoard

fn decode(record: &[u8]) -> vnn::tensorboard::proto::Event {
    use prost::Message;
    vnn::tensorboard::proto::Event::decode(record).unwrap()
}

#[test]
fn tensorboard_file_reads_back() {
    use vnn::tensorboard::proto::What;
    let dir = scratch("tensorboard");
    let mut w = EventWriter::create(&dir).unwrap();
    for step in 0..10 {
        w.add_scalar("train/loss", step, 1.0 / (step as f32 + 1.0))
            .unwrap();
        w.add_scalar("train/accuracy", step, step as f32 / 10.0)
            .unwrap();
    }
    let values: Vec<f32> = (0..1000).map(|i| ((i * 37) % 101) as f32 - 50.0).collect();
    for step in 0..5 {
        w.add_histogram("weights/layers.0", step, &values).unwrap();
    }
    w.flush().unwrap();
    let name = w.path().file_name().unwrap().to_str().unwrap().to_string();
    assert!(name.starts_with("events.out.tfevents."), "{name}");
    // A second writer in the same second gets its own file.
    let w2 = EventWriter::create(&dir).unwrap();
    assert_ne!(w2.path(), w.path());
    drop(w2);

    let bytes = std::fs::read(w.path()).unwrap();
    let records = read_records(&bytes, "events").unwrap();
    assert_eq!(records.len(), 1 + 20 + 5);
    let first = decode(records[0]);
    assert_eq!(first.what, Some(What::FileVersion("brain.Event:2".into())));
    let mut scalars = 0;
    let mut histograms = 0;
    for r in &records[1..] {
        let Some(What::Summary(s)) = decode(r).what else {
            panic!("not a summary")
        };
        assert_eq!(s.value.len(), 1);
        if let Some(h) = &s.value[0].histo {
            histograms += 1;
            assert_eq!(h.num, 1000.0);
            assert_eq!(h.bucket.iter().sum::<f64>(), 1000.0);
            assert_eq!(h.bucket.len(), HISTOGRAM_BUCKETS);
            assert_eq!((h.min, h.max), (-50.0, 50.0));
        } else {
            scalars += 1;
            assert!(s.value[0].simple_value.is_some());
        }
    }
    assert_eq!((scalars, histograms), (20, 5));
    let last = decode(records[20]);
    assert_eq!(last.step, 9);

    // Flip one byte of a data CRC: the reader must notice.
    let mut bad = bytes.clone();
    let end = bad.len() - 1;
    bad[end] ^= 1;
    let err = read_records(&bad, "events").unwrap_err();
    assert_eq!(err.to_string(), "events: record 25: data CRC mismatch");
    let err = read_records(&bytes[..bytes.len() - 2], "events").unwrap_err();
    assert_eq!(err.to_string(), "events: record 25: truncated data");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn histogram_edges() {
    let h = histogram(&[]);
    assert_eq!(
        (h.num, h.bucket.clone(), h.bucket_limit.clone()),
        (0.0, vec![0.0], vec![0.0])
    );
    let h = histogram(&[1.5; 7]);
    assert_eq!((h.min, h.max, h.num), (1.5, 1.5, 7.0));
    assert_eq!(
        (h.bucket.clone(), h.bucket_limit.clone()),
        (vec![7.0], vec![1.5])
    );
    let h = histogram(&[f32::NAN, 0.0, f32::INFINITY, 3.0]);
    assert_eq!((h.min, h.max, h.num, h.sum), (0.0, 3.0, 2.0, 3.0));
    assert_eq!(h.bucket[0], 1.0);
    assert_eq!(h.bucket[HISTOGRAM_BUCKETS - 1], 1.0);
    // Right edges increase and end at the maximum.
    let h = histogram(&[-1.0, 0.25, 2.0]);
    assert!(h.bucket_limit.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(*h.bucket_limit.last().unwrap(), 2.0);
    assert_eq!(h.bucket.iter().sum::<f64>(), 3.0);
    assert_eq!(h.sum_squares, 1.0 + 0.0625 + 4.0);
}
