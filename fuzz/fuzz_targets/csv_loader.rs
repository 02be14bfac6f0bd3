//! The CSV loaders on arbitrary bytes: never panic, and whatever loads is a
//! consistent dataset (finite features, labels in range, at least two
//! classes). The first byte picks the delimiter, the label column and the
//! loader; the rest is the file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vnn::csv::{load_features_csv_from_reader, load_training_csv_from_reader, CsvOptions};
use vnn::data::Dataset;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, text)) = data.split_first() else {
        return;
    };
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
