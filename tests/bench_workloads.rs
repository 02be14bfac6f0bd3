//! The mini-batch workload of `vnn bench`: its report, and the run it
//! times (every step of two epochs after the warm-up, on the stated data,
//! model and optimizer).

use vnn::bench::{self, minibatch, Report, Workload};
use vnn::error::Error;

#[test]
fn minibatch_reports_every_step_of_two_epochs() {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    let mut reports: Vec<Report> = Vec::new();
    pool.install(|| {
        bench::run(Workload::Minibatch, |r| -> Result<(), Error> {
            reports.push(r);
            Ok(())
        })
    })
    .unwrap();
    assert_eq!(reports.len(), 1);
    let r = &reports[0];
    assert_eq!(
        (r.workload, r.threads, r.calls_per_sample),
        ("minibatch", 2, 1)
    );
    // ceil(10,000 / 128) = 79 steps per epoch.
    assert_eq!(r.ns.len(), 2 * 79);
    assert!(r.ns.windows(2).all(|w| w[0] <= w[1]), "samples are sorted");
    assert!(r.min() > 0.0);
    // Forward 2N(DH + HK) plus backward 2N(DH + 2HK) for N = 128.
    let flop = 2.0 * 128.0 * (2.0 * 784.0 * 256.0 + 3.0 * 256.0 * 10.0);
    assert_eq!(r.flop, Some(flop));
    let json = r.to_json();
    assert_eq!(json["workload"], "minibatch");
    assert_eq!(json["samples"], 158);
}

#[test]
fn minibatch_runs_adam_on_batches_of_128() {
    let c = minibatch::config();
    assert_eq!(c.batch_size, Some(minibatch::BATCH));
    assert_eq!(minibatch::BATCH, 128);
    assert_eq!(c.optimizer, vnn::train::Optimizer::Adam);
    assert_eq!(
        (c.lr, c.reg, c.dropout, c.dropconnect),
        (1e-3, 1e-4, 0.0, 0.0)
    );
    assert_eq!(minibatch::SIZES, [784, 256, 10]);
    assert_eq!(
        (minibatch::ROWS, minibatch::WARMUP_STEPS, minibatch::EPOCHS),
        (10_000, 10, 2)
    );
    // Two row blocks of 64 rows per batch.
    assert_eq!(
        vnn::train::block_rows(128, 784 * 256 + 256 + 256 * 10 + 10),
        64
    );
}
