//! The checkpoint reader on arbitrary bytes: never panics, and whatever
//! loads saves and loads back to the same checkpoint.
//!
//! Half the inputs (odd first byte) start from a valid checkpoint, built
//! from sizes, an optimizer choice and optional best weights in the next
//! bytes, and corrupt it with byte patches and a truncation taken from the
//! rest.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::collections::BTreeMap;
use vnn::checkpoint::Checkpoint;
use vnn::model::{Init, Model};
use vnn::train::OptimizerState;

fn check(bytes: &[u8]) {
    if let Ok(ckpt) = Checkpoint::from_bytes(bytes, "fuzz") {
        assert!(ckpt.is_finite());
        let again = ckpt.to_bytes("fuzz").expect("a loaded checkpoint saves");
        let back = Checkpoint::from_bytes(&again, "fuzz").expect("a saved checkpoint loads");
        assert_eq!(back, ckpt);
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
    let Ok(model) = Model::new(&sizes, Init::Small, *c as u64) else {
        return;
    };
    let n = model.params().len();
    // Optimizer state: SGD, momentum or Adam.
    let optimizer = match (mode >> 1) % 3 {
        0 => OptimizerState::Sgd,
        1 => OptimizerState::Momentum {
            velocity: vec![0.125; n],
        },
        _ => OptimizerState::Adam {
            m: vec![0.125; n],
            v: vec![0.5; n],
        },
    };
    let ckpt = Checkpoint {
        step: u64::from(*a) * 1000 + u64::from(*b),
        model,
        optimizer,
        settings: r#"{"lr":0.1,"seed":3}"#.into(),
        extra: BTreeMap::from([("label_column".to_string(), "y".to_string())]),
        // Early stopping's best weights in some of them.
        best_params: (mode & 16 != 0).then(|| vec![0.25; n]),
    };
    let mut bytes = ckpt.to_bytes("fuzz").expect("a new checkpoint saves");
    let (patches, tail) = rest.split_at(rest.len() - rest.len() % 3);
    for p in patches.chunks_exact(3) {
        let at = u16::from_le_bytes([p[0], p[1]]) as usize % bytes.len();
        bytes[at] = p[2];
    }
    if let [cut, ..] = tail {
        if mode & 8 != 0 {
            bytes.truncate(bytes.len() * *cut as usize / 256);
        }
    }
    check(&bytes);
});
