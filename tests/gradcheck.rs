//! The trainer's analytic gradients against central finite differences of an
//! independent `f64` reference forward pass.
//!
//! The reference is written from the math alone: for layers `l`,
//! `Z_l = A_{l-1} (W_l * C_l) + b_l`, `A_l = act(Z_l) * D_l` on hidden
//! layers (`act` one of ReLU, tanh, sigmoid and leaky ReLU, written here
//! in `f64` from their definitions), and the loss
//! `L = mean_r (logsumexp(Z_r) - Z_r[y_r]) + 0.5 * reg * sum_l sum(W_l^2)`
//! (biases excluded from the L2 term, which uses the unmasked weights), with
//! `D_l` the dropout masks and `C_l` the dropconnect masks (all ones when
//! off). The masks are redrawn from the kernels' `bernoulli_mask` with the
//! stream ids the trainer documents ([`dropout_stream`]); inputs and
//! parameters are the trainer's own `f32` values widened to `f64`, so both
//! sides differentiate the same function.
//!
//! Central differences `(L(p + h e_i) - L(p - h e_i)) / 2h` with `h = 1e-6`
//! in `f64`: truncation `O(h^2)` and round-off `~1e-16 / h = 1e-10` are both
//! far below the tolerance, and `h` is small enough that no ReLU or leaky
//! ReLU input of these fixed-seed cases crosses its kink. The trainer's
//! tanh and sigmoid are `f32` approximations within about `1e-6` relative
//! of the exact functions, far inside the tolerance.
//!
//! Error measure for every parameter:
//! `|analytic - numeric| / max(|analytic|, |numeric|, FLOOR)` must be
//! `<= 1e-3`. `FLOOR` is `1e-4`: the analytic side is computed in `f32`, and
//! an entry is a sum of per-row terms of size up to ~1e-2 here, so its
//! absolute rounding error is ~1e-8; entries far below `FLOOR` (mostly
//! cancellations and units that never fire) are thus held to an absolute
//! `1e-7` instead of a relative bound they cannot meet in `f32`.
//!
//! The same check runs on the gradient recovered from one SGD step with
//! `lr = 1`, `w_before - w_after`, which must equal `g + reg * W` on
//! weights and `g` on biases. That difference of two `f32` weights of size
//! up to ~2 carries an absolute rounding error of up to one ulp (~2.4e-7),
//! so there the floor is `STEP_FLOOR = 1e-3`.

mod support;
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};
use rand_xoshiro::Xoshiro256PlusPlus;
use support::ref_act;
use vnn::data::{spiral, Dataset};
use vnn::kernels::mask::bernoulli_mask;
use vnn::model::{Activation, Init, Model};
use vnn::train::{block_rows, dropout_stream, Optimizer, TrainConfig, Trainer, DROPCONNECT_DOMAIN};

const H: f64 = 1e-6;
const TOL: f64 = 1e-3;
const FLOOR: f64 = 1e-4;
const STEP_FLOOR: f64 = 1e-3;

/// `(weight offset, bias offset)` of every layer in the flat buffer
/// `W0, b0, W1, b1, ...`, computed here independently of `Layout`.
fn offsets(sizes: &[usize]) -> (Vec<(usize, usize)>, usize) {
    let mut off = 0;
    let mut out = Vec::new();
    for w in sizes.windows(2) {
        out.push((off, off + w[0] * w[1]));
        off += w[0] * w[1] + w[1];
    }
    (out, off)
}

/// Masks of one step, in `f64`.
struct Masks {
    /// Per hidden layer, `rows x width` (1 where dropout is off).
    dropout: Vec<Vec<f64>>,
    /// Parameter-sized dropconnect multipliers (1 on biases and when off).
    dropconnect: Vec<f64>,
}

/// The reference loss.
#[allow(clippy::too_many_arguments)]
fn ref_loss(
    sizes: &[usize],
    act: Activation,
    p: &[f64],
    x: &[f64],
    y: &[u32],
    reg: f64,
    masks: &Masks,
) -> f64 {
    let n = y.len();
    let (offs, _) = offsets(sizes);
    let n_layers = sizes.len() - 1;
    let mut a = x.to_vec();
    for (l, &(wo, bo)) in offs.iter().enumerate() {
        let (n_in, n_out) = (sizes[l], sizes[l + 1]);
        let mut z = vec![0f64; n * n_out];
        for r in 0..n {
            for j in 0..n_out {
                let mut s = p[bo + j];
                for i in 0..n_in {
                    let idx = wo + i * n_out + j;
                    s += a[r * n_in + i] * p[idx] * masks.dropconnect[idx];
                }
                z[r * n_out + j] = s;
            }
        }
        if l + 1 < n_layers {
            for (v, m) in z.iter_mut().zip(&masks.dropout[l]) {
                *v = ref_act(act, *v) * m;
            }
        }
        a = z;
    }
    let k = sizes[n_layers];
    let mut ce = 0f64;
    for (r, &label) in y.iter().enumerate() {
        let row = &a[r * k..(r + 1) * k];
        let max = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let lse = max + row.iter().map(|v| (v - max).exp()).sum::<f64>().ln();
        ce += lse - row[label as usize];
    }
    let mut sq = 0f64;
    for (l, &(wo, _)) in offs.iter().enumerate() {
        sq += p[wo..wo + sizes[l] * sizes[l + 1]]
            .iter()
            .map(|w| w * w)
            .sum::<f64>();
    }
    ce / n as f64 + 0.5 * reg * sq
}

/// The masks the trainer draws at 0-based step `step` for a full batch of
/// `rows` rows, rebuilt from the documented streams.
fn masks_at(sizes: &[usize], rows: usize, config: &TrainConfig, step: u64) -> Masks {
    let (offs, len) = offsets(sizes);
    let block_rows = block_rows(rows, len);
    let mut dropout = Vec::new();
    for (l, &width) in sizes[1..sizes.len() - 1].iter().enumerate() {
        let mut m = vec![1f64; rows * width];
        if config.dropout > 0.0 {
            for (b, chunk) in m.chunks_mut(block_rows * width).enumerate() {
                let mut m32 = vec![0f32; chunk.len()];
                bernoulli_mask(
                    &mut m32,
                    config.dropout,
                    config.seed,
                    dropout_stream(step, b, l),
                );
                for (d, s) in chunk.iter_mut().zip(&m32) {
                    *d = *s as f64;
                }
            }
        }
        dropout.push(m);
    }
    let mut dropconnect = vec![1f64; len];
    if config.dropconnect > 0.0 {
        for (l, &(wo, _)) in offs.iter().enumerate() {
            let mut m32 = vec![0f32; sizes[l] * sizes[l + 1]];
            bernoulli_mask(
                &mut m32,
                config.dropconnect,
                config.seed ^ DROPCONNECT_DOMAIN,
                dropout_stream(step, 0, l),
            );
            for (d, s) in dropconnect[wo..].iter_mut().zip(&m32) {
                *d = *s as f64;
            }
        }
    }
    Masks {
        dropout,
        dropconnect,
    }
}

/// Standard normal features and uniform labels.
fn gaussian(rows: usize, n_features: usize, n_classes: usize, seed: u64) -> Dataset {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let features = (0..rows * n_features)
        .map(|_| {
            let z: f64 = StandardNormal.sample(&mut rng);
            z as f32
        })
        .collect();
    let labels = (0..rows)
        .map(|r| ((r * 7 + seed as usize) % n_classes) as u32)
        .collect();
    Dataset::new(features, labels, n_features, n_classes).unwrap()
}

struct Case {
    name: &'static str,
    sizes: Vec<usize>,
    /// The hidden layers' activation.
    act: Activation,
    data: Dataset,
    reg: f32,
    dropout: f32,
    dropconnect: f32,
    /// SGD steps taken before the check (moves weights off their init,
    /// biases off 0, and the mask streams off step 0).
    warmup: u64,
}

/// Largest error of `analytic` against `numeric`, asserting the bound on each.
fn compare(name: &str, what: &str, analytic: &[f64], numeric: &[f64], floor: f64) -> f64 {
    assert_eq!(analytic.len(), numeric.len());
    let mut worst = 0f64;
    for (i, (&a, &b)) in analytic.iter().zip(numeric).enumerate() {
        let err = (a - b).abs() / a.abs().max(b.abs()).max(floor);
        assert!(
            err <= TOL,
            "{name}: {what} of parameter {i}: analytic {a:e}, numeric {b:e}, error {err:e}"
        );
        worst = worst.max(err);
    }
    worst
}

fn check(case: Case) {
    let Case {
        name,
        sizes,
        act,
        data,
        reg,
        dropout,
        dropconnect,
        warmup,
    } = case;
    let config = TrainConfig {
        epochs: warmup + 1,
        lr: 1.0,
        reg,
        optimizer: Optimizer::Sgd,
        batch_size: None,
        dropout,
        dropconnect,
        seed: 42,
    };
    let model = Model::new(&sizes, Init::He, 7)
        .unwrap()
        .with_activation(act);
    let name = &format!("{name} {act}")[..];
    let (offs, len) = offsets(&sizes);
    assert_eq!(model.params().len(), len, "{name}: parameter count");
    for (slot, &(wo, bo)) in model.layout().layers().iter().zip(&offs) {
        assert_eq!((slot.weight, slot.bias), (wo, bo), "{name}: layout");
    }
    let mut trainer = Trainer::new(model, &data, config.clone()).unwrap();
    for _ in 0..warmup {
        trainer.step().unwrap();
    }
    let step = trainer.steps_done();
    let before: Vec<f32> = trainer.model().params().to_vec();
    let p: Vec<f64> = before.iter().map(|&v| v as f64).collect();
    let x: Vec<f64> = data.features().iter().map(|&v| v as f64).collect();
    let masks = masks_at(&sizes, data.n_rows(), &config, step);
    let loss_ref = ref_loss(&sizes, act, &p, &x, data.labels(), reg as f64, &masks);

    let (stats, grad) = trainer.gradient().unwrap();
    let grad = grad.to_vec();
    assert_eq!(stats.step, step + 1);
    assert_eq!(trainer.steps_done(), step, "gradient() must not advance");
    // The library's loss (f32 forward, f64 sums) against the f64 reference.
    let loss_err = (stats.loss - loss_ref).abs() / loss_ref.abs().max(1.0);
    assert!(
        loss_err <= 1e-5,
        "{name}: loss {} vs reference {loss_ref}",
        stats.loss
    );
    // Full gradient: the returned cross-entropy gradient plus reg * W on weights.
    let mut analytic: Vec<f64> = grad.iter().map(|&g| g as f64).collect();
    for (l, &(wo, _)) in offs.iter().enumerate() {
        for i in wo..wo + sizes[l] * sizes[l + 1] {
            analytic[i] += reg as f64 * p[i];
        }
    }

    let numeric: Vec<f64> = (0..len)
        .map(|i| {
            let mut q = p.clone();
            q[i] = p[i] + H;
            let up = ref_loss(&sizes, act, &q, &x, data.labels(), reg as f64, &masks);
            q[i] = p[i] - H;
            let down = ref_loss(&sizes, act, &q, &x, data.labels(), reg as f64, &masks);
            (up - down) / (2.0 * H)
        })
        .collect();
    let large = numeric.iter().filter(|g| g.abs() > FLOOR).count();
    assert!(
        large * 2 > len,
        "{name}: only {large} of {len} gradient entries exceed the floor; the check would be vacuous"
    );
    let worst = compare(name, "gradient()", &analytic, &numeric, FLOOR);

    // The update applies exactly that gradient: with SGD and lr = 1,
    // w_before - w_after = g + reg * W (biases without the L2 term).
    trainer.step().unwrap();
    assert_eq!(trainer.steps_done(), step + 1);
    let lr = config.lr as f64;
    let from_step: Vec<f64> = before
        .iter()
        .zip(trainer.model().params())
        .map(|(&b, &a)| (b as f64 - a as f64) / lr)
        .collect();
    let worst_step = compare(name, "SGD step", &from_step, &numeric, STEP_FLOOR);
    eprintln!(
        "{name}: loss {:.6} (reference {loss_ref:.6}), max gradient error {worst:.2e}, via step {worst_step:.2e}, {large}/{len} entries above floor",
        stats.loss
    );
}

#[test]
fn linear_without_and_with_l2() {
    for reg in [0.0, 1e-2] {
        check(Case {
            name: "linear [2,3]",
            sizes: vec![2, 3],
            act: Activation::Relu,
            data: spiral(20, 3, 1),
            reg,
            dropout: 0.0,
            dropconnect: 0.0,
            warmup: 3,
        });
    }
}

// Every MLP case runs with each activation: on the narrow fused kernels
// where the shapes allow (for the activations other than ReLU only without
// dropout), else on the GEMM path of the layer ops.

#[test]
fn mlp_one_hidden_layer_without_and_with_l2() {
    for (act, reg) in Activation::ALL
        .into_iter()
        .flat_map(|a| [(a, 0.0), (a, 1e-2)])
    {
        check(Case {
            name: "mlp [2,16,3]",
            sizes: vec![2, 16, 3],
            act,
            data: spiral(20, 3, 2),
            reg,
            dropout: 0.0,
            dropconnect: 0.0,
            warmup: 5,
        });
    }
}

#[test]
fn mlp_two_hidden_layers_without_and_with_l2() {
    for (act, reg) in Activation::ALL
        .into_iter()
        .flat_map(|a| [(a, 0.0), (a, 1e-2)])
    {
        check(Case {
            name: "mlp [2,12,8,3]",
            sizes: vec![2, 12, 8, 3],
            act,
            data: spiral(20, 3, 3),
            reg,
            dropout: 0.0,
            dropconnect: 0.0,
            warmup: 5,
        });
    }
}

#[test]
fn mlp_odd_widths_gaussian_data() {
    // Widths off the 8-lane grid exercise every SIMD remainder path.
    for act in Activation::ALL {
        check(Case {
            name: "mlp [5,13,9,4]",
            sizes: vec![5, 13, 9, 4],
            act,
            data: gaussian(50, 5, 4, 11),
            reg: 1e-2,
            dropout: 0.0,
            dropconnect: 0.0,
            warmup: 2,
        });
    }
}

#[test]
fn mlp_wide_layers_take_the_gemm_paths() {
    // More than 16 inputs and outputs per hidden layer: the ReLU forward
    // goes through the GEMM (not the fused narrow kernel), and the backward
    // `dA = dZ W^T` of the second layer runs in chunks of 128 rows.
    for act in Activation::ALL {
        check(Case {
            name: "mlp [20,24,18,5] x 300 rows",
            sizes: vec![20, 24, 18, 5],
            act,
            data: gaussian(300, 20, 5, 15),
            reg: 1e-2,
            dropout: 0.0,
            dropconnect: 0.0,
            warmup: 2,
        });
    }
}

#[test]
fn mlp_several_row_blocks() {
    // 1100 rows: three blocks of at most 512 rows, gradients summed across
    // blocks.
    for act in Activation::ALL {
        check(Case {
            name: "mlp [3,10,4] x 1100 rows",
            sizes: vec![3, 10, 4],
            act,
            data: gaussian(1100, 3, 4, 12),
            reg: 1e-2,
            dropout: 0.0,
            dropconnect: 0.0,
            warmup: 2,
        });
    }
}

#[test]
fn mlp_with_dropout() {
    for act in Activation::ALL {
        check(Case {
            name: "mlp [2,16,3] dropout 0.5",
            sizes: vec![2, 16, 3],
            act,
            data: spiral(20, 3, 4),
            reg: 1e-2,
            dropout: 0.5,
            dropconnect: 0.0,
            warmup: 3,
        });
        // Two hidden layers, three blocks: every (block, layer) has its own
        // mask, which the backward of tanh, sigmoid and leaky ReLU draws
        // again.
        check(Case {
            name: "mlp [3,10,6,4] x 1100 rows dropout 0.3",
            sizes: vec![3, 10, 6, 4],
            act,
            data: gaussian(1100, 3, 4, 13),
            reg: 1e-2,
            dropout: 0.3,
            dropconnect: 0.0,
            warmup: 2,
        });
    }
}

#[test]
fn mlp_with_dropconnect() {
    for act in Activation::ALL {
        check(Case {
            name: "mlp [2,12,8,3] dropconnect 0.3",
            sizes: vec![2, 12, 8, 3],
            act,
            data: spiral(20, 3, 5),
            reg: 1e-2,
            dropout: 0.0,
            dropconnect: 0.3,
            warmup: 3,
        });
    }
    check(Case {
        name: "linear [5,4] dropconnect 0.5",
        sizes: vec![5, 4],
        act: Activation::Relu,
        data: gaussian(40, 5, 4, 14),
        reg: 0.0,
        dropout: 0.0,
        dropconnect: 0.5,
        warmup: 1,
    });
}
