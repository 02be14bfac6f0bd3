//! Test support: the ISA token for tests of the AVX2 + FMA instantiations,
//! with a loud skip (and `VNN_REQUIRE_AVX2=1` turning the skip into a
//! failure), and the tests of the shared lane math.

#[cfg(target_arch = "x86_64")]
use super::avx2::Avx2Fma;
#[cfg(target_arch = "x86_64")]
use super::avx512::Avx512;

/// The AVX2 + FMA token for a test named `what`, or `None` after printing
/// a SKIPPED line when the CPU lacks AVX2 or FMA.
///
/// # Panics
/// When the CPU lacks them and `VNN_REQUIRE_AVX2=1` is set.
#[cfg(target_arch = "x86_64")]
pub(crate) fn avx2_fma_or_skip(what: &str) -> Option<Avx2Fma> {
    let isa = super::detect();
    if isa.is_none() {
        skip(what);
    }
    isa
}

/// A vector type a test runs an engine with.
#[derive(Clone, Copy, Debug)]
pub(crate) enum TestIsa {
    /// [`super::Wide`], the build's `wide` vectors.
    Wide,
    /// AVX2 + FMA, chosen at run time.
    #[cfg(target_arch = "x86_64")]
    Avx2Fma(Avx2Fma),
}

impl TestIsa {
    /// Runs `k` with this vector type.
    pub(crate) fn run<K: super::Kernel>(self, k: K) -> K::Output {
        match self {
            TestIsa::Wide => k.run::<super::Wide>(),
            #[cfg(target_arch = "x86_64")]
            TestIsa::Avx2Fma(isa) => isa.run(k),
        }
    }
}

/// Every vector type an engine is instantiated with on this target: `wide`
/// always, AVX2 + FMA when the CPU has them (else a loud skip, see
/// [`avx2_fma_or_skip`]).
pub(crate) fn isas(what: &str) -> Vec<TestIsa> {
    #[allow(unused_mut)]
    let mut out = vec![TestIsa::Wide];
    #[cfg(target_arch = "x86_64")]
    out.extend(avx2_fma_or_skip(what).map(TestIsa::Avx2Fma));
    #[cfg(not(target_arch = "x86_64"))]
    skip(what);
    out
}

/// Every vector type of [`super::dispatch_widest`] and [`super::dispatch`]
/// on this target: those of [`isas`], `wide`'s sixteen lanes, and AVX-512F
/// when the CPU has it (else a line saying it was skipped; no failure, as
/// most CPUs lack it).
pub(crate) fn widest_isas(what: &str) -> Vec<WidestIsa> {
    let mut out: Vec<WidestIsa> = isas(what).into_iter().map(WidestIsa::Narrow).collect();
    out.push(WidestIsa::Wide16);
    #[cfg(target_arch = "x86_64")]
    match super::avx512::detect() {
        Some(isa) => out.push(WidestIsa::Avx512(isa)),
        None => eprintln!("{what}: no AVX-512F on this CPU, its instantiation not run"),
    }
    out
}

/// A vector type a test of a [`super::dispatch_widest`] kernel runs it
/// with (a separate type from [`TestIsa`], so that kernels written for
/// eight lanes are not instantiated with sixteen).
#[derive(Clone, Copy, Debug)]
pub(crate) enum WidestIsa {
    /// One of [`isas`].
    Narrow(TestIsa),
    /// `wide`'s sixteen lanes (AVX-512 when the build enables it).
    Wide16,
    /// AVX-512F, chosen at run time.
    #[cfg(target_arch = "x86_64")]
    Avx512(Avx512),
}

impl WidestIsa {
    /// Runs `k` with this vector type.
    pub(crate) fn run<K: super::Kernel>(self, k: K) -> K::Output {
        match self {
            WidestIsa::Narrow(isa) => isa.run(k),
            WidestIsa::Wide16 => k.run::<wide::f32x16>(),
            #[cfg(target_arch = "x86_64")]
            WidestIsa::Avx512(isa) => isa.run(k),
        }
    }
}

/// A small deterministic generator: values in [-2, 2).
pub(crate) fn data(n: usize, seed: u32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s >> 8) as f32 / (1u32 << 24) as f32 * 4.0 - 2.0
        })
        .collect()
}

/// The skip of [`avx2_fma_or_skip`], also for non-x86 targets.
#[allow(dead_code)]
pub(crate) fn skip(what: &str) {
    let required = std::env::var("VNN_REQUIRE_AVX2").is_ok_and(|v| v == "1");
    assert!(
        !required,
        "{what}: this CPU lacks AVX2 + FMA, and VNN_REQUIRE_AVX2=1 requires that path to be tested"
    );
    eprintln!("SKIPPED {what}: this CPU lacks AVX2 + FMA, so the AVX2 instantiation is not tested");
}

mod math {
    use crate::simd::{exp_nonpositive, ln_at_least_one, Kernel, Lane, Wide};

    /// The worst errors of `exp` (relative) and `ln` (absolute) against
    /// `f64` over `[-87, 0]`, and the results at special inputs.
    struct Accuracy;

    const SPECIAL: [f32; 8] = [
        f32::NEG_INFINITY,
        -88.0,
        -1e30,
        f32::NAN,
        -87.0,
        0.0,
        -0.0,
        -1e-30,
    ];
    const NAN_SUM: [f32; 8] = [f32::NAN, 1.0, 2.0, 16.0, 1.0, 1.0, 1.0, 1.0];

    impl Kernel for Accuracy {
        type Output = (f64, f64, [f32; 8], [f32; 8]);
        #[inline(always)]
        fn run<S: Lane>(self) -> Self::Output {
            let mut worst = (0.0f64, 0.0f64);
            let mut xs = [0.0f32; 16];
            let mut x = -87.0f32;
            while x <= 0.0 {
                for (t, v) in xs.iter_mut().enumerate() {
                    *v = x * [1.0, 0.5, 0.25, 0.125, 0.01, -0.0, 0.0, 0.9][t % 8];
                }
                let e = exp_nonpositive(S::load(&xs)).to_array();
                for (&v, &o) in xs.iter().zip(&e).take(S::LANES) {
                    let want = (v as f64).exp();
                    worst.0 = worst.0.max(((o as f64 - want) / want).abs());
                }
                let sums = xs.map(|v| 1.0 - v * 0.18); // 1 ..= 16.7
                let l = ln_at_least_one(S::load(&sums)).to_array();
                for (&s, &o) in sums.iter().zip(&l).take(S::LANES) {
                    worst.1 = worst.1.max((o as f64 - (s as f64).ln()).abs());
                }
                x += 0.0137;
            }
            let special = exp_nonpositive(S::load_padded(&SPECIAL, 0.0)).to_array();
            let nan_sum = ln_at_least_one(S::load_padded(&NAN_SUM, 1.0)).to_array();
            let first8 = |a: [f32; 16]| std::array::from_fn(|t| a[t]);
            (worst.0, worst.1, first8(special), first8(nan_sum))
        }
    }

    fn check(name: &str, (exp_err, ln_err, special, nan_sum): (f64, f64, [f32; 8], [f32; 8])) {
        assert!(exp_err < 2e-7, "{name}: exp max relative error {exp_err}");
        assert!(ln_err < 5e-7, "{name}: ln max absolute error {ln_err}");
        assert_eq!(&special[..3], &[0.0; 3], "{name}");
        assert!(special[3].is_nan(), "{name}");
        assert!(special[4] > 0.0 && special[5] == 1.0 && special[6] == 1.0 && special[7] == 1.0);
        assert!(nan_sum[0].is_nan() && nan_sum[1] == 0.0, "{name}");
    }

    #[test]
    fn exp_and_ln_against_std_on_every_lane_type() {
        check("f32x8", Accuracy.run::<Wide>());
        check("f32x16", Accuracy.run::<wide::f32x16>());
        #[cfg(target_arch = "x86_64")]
        if let Some(isa) = super::avx2_fma_or_skip("exp/ln on AVX2 + FMA") {
            check("avx2", isa.run(Accuracy));
        }
        #[cfg(target_arch = "x86_64")]
        if let Some(isa) = super::super::avx512::detect() {
            check("avx512", isa.run(Accuracy));
        }
    }
}
