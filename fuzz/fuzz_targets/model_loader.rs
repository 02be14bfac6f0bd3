//! The model file reader on arbitrary bytes: never panics, and whatever
//! loads saves and loads back to the same model.
//!
//! Random bytes rarely get past the safetensors header, so half the inputs
//! (odd first byte) start from a valid model file, built from sizes in the
//! next bytes, and corrupt it with byte patches and a truncation taken from
//! the rest.
//!
//! With bit 3 of the first byte set, the input is a crafted file whose
//! metadata and tensor shapes claim large sizes (widths up to 2^40, taken
//! from the next bytes) while the file holds at most a few kilobytes of
//! data: it must be refused without allocating what it claims.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::collections::BTreeMap;
use vnn::model::{Init, Model};
use vnn::modelfile::ModelFile;

fn check(bytes: &[u8]) {
    if let Ok(file) = ModelFile::from_bytes(bytes, "fuzz") {
        let again = file.to_bytes().expect("a loaded model saves");
        let back = ModelFile::from_bytes(&again, "fuzz").expect("a saved model loads");
        assert_eq!(back, file);
    }
}

/// A safetensors file claiming layer widths `sizes` (with consistent
/// shapes and offsets) and holding `held` bytes of data.
fn claiming(sizes: &[u64], held: usize) -> Vec<u8> {
    let mut header = serde_json::Map::new();
    let names = |n: u64, p: &str| (0..n.min(4)).map(|i| format!("{p}{i}")).collect::<Vec<_>>();
    let meta = serde_json::json!({
        "format": "vnn-model", "format_version": "1", "architecture": "mlp", "activation": "relu",
        "sizes": serde_json::to_string(sizes).unwrap(), "standardize": "null",
        "feature_names": serde_json::to_string(&names(sizes[0], "x")).unwrap(),
        "class_names": serde_json::to_string(&names(*sizes.last().unwrap(), "c")).unwrap(),
    });
    header.insert("__metadata__".into(), meta);
    let mut offset = 0u64;
    for (i, w) in sizes.windows(2).enumerate() {
        for (name, shape) in [("weight", vec![w[0], w[1]]), ("bias", vec![w[1]])] {
            let len = shape.iter().fold(4u64, |a, &d| a.saturating_mul(d));
            let end = offset.saturating_add(len);
            header.insert(
                format!("layers.{i}.{name}"),
                serde_json::json!({ "dtype": "F32", "shape": shape, "data_offsets": [offset, end] }),
            );
            offset = end;
        }
    }
    let text = serde_json::Value::Object(header).to_string();
    let mut bytes = (text.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(text.as_bytes());
    bytes.resize(bytes.len() + held, 0);
    bytes
}

/// Widths from `spec` (pairs of bytes as exponents and mantissas, up to
/// 2^40), a file claiming them, and its check.
fn check_claims(spec: &[u8]) {
    let sizes: Vec<u64> = spec
        .chunks_exact(2)
        .take(4)
        .map(|p| (1 + (p[0] as u64 & 0x3f)) << (p[1] % 41))
        .collect();
    if sizes.len() < 2 {
        return;
    }
    let held = spec.last().map_or(0, |&b| b as usize * 16);
    check(&claiming(&sizes, held));
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 8 != 0 {
        check_claims(rest);
        return;
    }
    if mode & 1 == 0 {
        check(rest);
        return;
    }
    let [a, b, c, rest @ ..] = rest else {
        return;
    };
    let mut sizes = vec![1 + (a % 4) as usize];
    if c & 1 == 1 {
        sizes.push(1 + (c >> 1) as usize % 5);
    }
    sizes.push(1 + (b % 4) as usize);
    let Ok(mut model) = Model::new(&sizes, Init::Small, *c as u64) else {
        return;
    };
    if mode & 2 != 0 {
        let s = vnn::data::Standardizer::new(vec![0.5; sizes[0]], vec![2.0; sizes[0]])
            .expect("a valid standardizer");
        model = model.with_standardizer(s).expect("of the model's width");
    }
    let extra = BTreeMap::from([("training_command".to_string(), "fuzz".to_string())]);
    let mut bytes = ModelFile {
        model,
        metadata: extra,
    }
    .to_bytes()
    .expect("a new model saves");
    let (patches, tail) = rest.split_at(rest.len() - rest.len() % 3);
    for p in patches.chunks_exact(3) {
        let at = u16::from_le_bytes([p[0], p[1]]) as usize % bytes.len();
        bytes[at] = p[2];
    }
    if let [cut, ..] = tail {
        if mode & 4 != 0 {
            bytes.truncate(bytes.len() * *cut as usize / 256);
        }
    }
    check(&bytes);
});
