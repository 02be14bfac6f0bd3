//! The model file reader on arbitrary bytes: never panics, and whatever
//! loads saves and loads back to the same model.
//!
//! Random bytes rarely get past the safetensors header, so half the inputs
//! (odd first byte) start from a valid model file, built from sizes in the
//! next bytes, and corrupt it with byte patches and a truncation taken from
//! the rest.
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

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
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
