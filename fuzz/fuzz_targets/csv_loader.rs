//! The CSV loaders on arbitrary bytes: never panic, and whatever loads is a
//! consistent dataset (finite features, labels in range, at least two
//! classes). The first byte picks the delimiter, the label column and the
//! loader; the rest is the file.
//!
//! With the first byte 0xff (one input in 256), the
//! file is generated instead: the next bytes give its columns (up to
//! 65,536), rows (up to 2^20) and distinct labels, so that large files with
//! many columns, rows or classes reach the loader (capped at 512 KiB of
//! text), and a model and a full-batch trainer of the loaded classes are
//! checked against the memory budget (set to 1 GiB here, below the
//! fuzzer's RSS limit) before they allocate.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::fmt::Write;
use vnn::csv::{load_features_csv_from_reader, load_training_csv_from_reader, CsvOptions};
use vnn::data::Dataset;

/// The most text a generated file holds.
const MAX_GENERATED: usize = 512 << 10;

/// A CSV of `columns` features `a0..` and a label `y` over `rows` rows with
/// `labels` distinct labels, cut at [`MAX_GENERATED`] bytes (at a line end).
fn generated(spec: &[u8]) -> Option<String> {
    let [c0, c1, r0, r1, r2, l0, l1, l2, ..] = *spec else {
        return None;
    };
    let columns = 1 + u16::from_le_bytes([c0, c1]) as usize;
    let rows = 1 + (u32::from_le_bytes([r0, r1, r2 & 0x0f, 0]) as usize);
    let labels = 1 + u32::from_le_bytes([l0, l1, l2 & 0x0f, 0]) as usize;
    let mut text = String::new();
    for c in 0..columns {
        let _ = write!(text, "a{c},");
    }
    text.push_str("y\n");
    for r in 0..rows {
        let line_start = text.len();
        for c in 0..columns {
            let _ = write!(text, "{},", (r * 31 + c * 7) % 1000);
        }
        let _ = writeln!(text, "k{}", r % labels);
        if text.len() > MAX_GENERATED {
            text.truncate(line_start);
            break;
        }
    }
    Some(text)
}

/// A generated file loads or fails cleanly; a model and a full-batch run
/// for its classes are refused by the budget or fit it (the trainer is
/// built, not run).
fn check_generated(spec: &[u8]) {
    let Some(text) = generated(spec) else {
        return;
    };
    let opts = CsvOptions::default();
    let Ok(d) = load_training_csv_from_reader(text.as_bytes(), "fuzz", &opts) else {
        return;
    };
    let rebuilt = vnn::data::Dataset::new(
        d.features().to_vec(),
        d.labels().to_vec(),
        d.n_features(),
        d.n_classes(),
    );
    rebuilt.expect("a loaded dataset is consistent");
    let Ok(model) =
        vnn::model::Model::new(&[d.n_features(), d.n_classes()], vnn::model::Init::Small, 0)
    else {
        return;
    };
    let config = vnn::train::TrainConfig {
        epochs: 1,
        ..Default::default()
    };
    let _ = vnn::train::Trainer::new(model, &d, config);
}

fuzz_target!(init: {
    std::env::set_var(vnn::budget::ENV, "1G");
}, |data: &[u8]| {
    let Some((&mode, text)) = data.split_first() else {
        return;
    };
    if mode == 0xff {
        check_generated(text);
        return;
    }
    let delimiter = [b',', b';', b'\t', b'|'][(mode & 3) as usize];
    if mode & 4 == 0 {
        let opts = CsvOptions {
            label: (mode & 8 != 0).then(|| "y".to_string()),
            delimiter,
        };
        if let Ok(d) = load_training_csv_from_reader(text, "fuzz", &opts) {
            // Building it again through the checked constructors succeeds.
            let again = Dataset::new(
                d.features().to_vec(),
                d.labels().to_vec(),
                d.n_features(),
                d.n_classes(),
            )
            .and_then(|a| a.with_names(d.feature_names().to_vec(), d.class_names().to_vec()))
            .expect("a loaded dataset is consistent");
            assert_eq!(again, d);
            assert!(d.n_classes() >= 2 && d.n_features() >= 1 && d.n_rows() >= 1);
        }
    } else {
        let names = ["a".to_string(), "b".to_string()];
        let classes = ["0".to_string(), "x".to_string()];
        let label = (mode & 8 != 0).then_some("y");
        if let Ok(f) =
            load_features_csv_from_reader(text, "fuzz", &names, &classes, label, delimiter)
        {
            assert_eq!(f.features.len(), f.rows * 2);
            assert!(f.features.iter().all(|v| v.is_finite()));
            if let Some(labels) = &f.labels {
                assert_eq!(labels.len(), f.rows);
                assert!(labels.iter().all(|&c| c < 2));
            }
        }
    }
});
