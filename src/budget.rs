//! The memory budget: sizes that come from outside (layer widths, spiral
//! sizes, class counts, rows, thread counts, file sizes) are checked
//! against it before anything of that size is allocated or computed.
//!
//! The budget is what the process can really get: the smaller of its
//! address-space limit (`Max address space` in `/proc/self/limits`, as
//! `getrlimit(RLIMIT_AS)` gives it) and the memory available
//! (`MemAvailable` in `/proc/meminfo`), less [`HEADROOM_BYTES`] and an
//! eighth for the program itself, its threads and the allocator. Where
//! `/proc` cannot be read, it is [`FALLBACK_BYTES`]. The environment
//! variable [`ENV`] (`VNN_MAX_MEMORY`, a byte count with an optional `K`,
//! `M`, `G` or `T` suffix, powers of 1024) overrides it.
//!
//! Sizes are computed with checked arithmetic ([`bytes`]): a size that does
//! not fit in a `u64` is refused like one over the budget, never wrapped.
//!
//! ```
//! // A size past u64 is refused, as is one over the limit.
//! assert_eq!(vnn::budget::bytes(&[u64::MAX, 2]), None);
//! let e = vnn::budget::check_within("a test", None, 1 << 20, "ask for less").unwrap_err();
//! assert!(e.to_string().contains("a test needs more than"));
//! assert!(vnn::budget::check_within("a test", Some(1000), 1 << 20, "").is_ok());
//! ```

use crate::error::{Error, Result};

/// The environment variable that sets the budget in bytes (`4000000000`,
/// `512M`, `4G`).
pub const ENV: &str = "VNN_MAX_MEMORY";

/// The budget where the system's limits cannot be read: 16 GiB.
pub const FALLBACK_BYTES: u64 = 16 << 30;

/// Bytes held back from the system's limits for the program itself.
pub const HEADROOM_BYTES: u64 = 128 << 20;

/// The most worker threads a run may ask for (`threads`).
pub const MAX_THREADS: usize = 256;

/// A byte count with an optional binary suffix: `4000000000`, `64K`, `512M`,
/// `4G`, `1T` (case-insensitive, an optional trailing `B` or `iB`).
///
/// ```
/// use vnn::budget::parse_bytes;
/// assert_eq!(parse_bytes("4000000000"), Some(4_000_000_000));
/// assert_eq!(parse_bytes("512M"), Some(512 << 20));
/// assert_eq!(parse_bytes("4GiB"), Some(4 << 30));
/// assert_eq!(parse_bytes("2x"), None);
/// assert_eq!(parse_bytes("99999999999T"), None);
/// ```
pub fn parse_bytes(text: &str) -> Option<u64> {
    let t = text.trim().to_ascii_uppercase();
    let t = t
        .strip_suffix("IB")
        .or_else(|| t.strip_suffix('B'))
        .unwrap_or(&t);
    let (digits, shift) = match t.char_indices().last()? {
        (i, 'K') => (&t[..i], 10),
        (i, 'M') => (&t[..i], 20),
        (i, 'G') => (&t[..i], 30),
        (i, 'T') => (&t[..i], 40),
        _ => (t, 0),
    };
    let n: u64 = digits.trim().parse().ok()?;
    n.checked_mul(1u64 << shift)
}

/// The product of `factors`, or `None` when it does not fit in a `u64`.
pub fn bytes(factors: &[u64]) -> Option<u64> {
    factors.iter().try_fold(1u64, |acc, &f| acc.checked_mul(f))
}

/// The sum of `terms`, or `None` when one is `None` or the sum does not fit.
pub fn sum(terms: &[Option<u64>]) -> Option<u64> {
    terms
        .iter()
        .try_fold(0u64, |acc, t| t.and_then(|t| acc.checked_add(t)))
}

/// The value of a `/proc` file's line starting with `key`: its first
/// number (`None` for `unlimited` or a missing line).
fn proc_value(text: &str, key: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with(key))?;
    line[key.len()..].split_whitespace().next()?.parse().ok()
}

/// The budget the system allows, from `/proc`: the smaller of the
/// address-space limit and the available memory, less the headroom.
fn system_limit() -> u64 {
    let address_space = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|t| proc_value(&t, "Max address space"));
    let available = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| proc_value(&t, "MemAvailable:"))
        .and_then(|kib| kib.checked_mul(1024));
    let raw = match (address_space, available) {
        (None, None) => return FALLBACK_BYTES,
        (a, b) => a.unwrap_or(u64::MAX).min(b.unwrap_or(u64::MAX)),
    };
    raw.saturating_sub(raw / 8).saturating_sub(HEADROOM_BYTES)
}

/// The memory budget in bytes: [`ENV`] when set, else what the system
/// allows (see the [module docs](self)). Read once per process, at the
/// first call.
///
/// # Errors
/// [`Error::Setting`] when [`ENV`] is set but is not a byte count.
pub fn limit() -> Result<u64> {
    static LIMIT: std::sync::OnceLock<std::result::Result<u64, String>> =
        std::sync::OnceLock::new();
    let read = || match std::env::var(ENV) {
        Ok(text) => parse_bytes(&text).ok_or(text),
        Err(_) => Ok(system_limit()),
    };
    LIMIT.get_or_init(read).clone().map_err(|text| {
        Error::setting(
            ENV,
            "a byte count such as 4000000000, 512M or 4G",
            crate::error::shown(&text),
        )
    })
}

/// Sizes up to this many bytes are not worth a check on a hot path
/// ([`Model::logits`](crate::model::Model::logits) checks only above it).
pub const SMALL_BYTES: u64 = 64 << 20;

/// Refuses `needed` bytes (`None`: more than a `u64` counts) for `what`
/// when they exceed the budget ([`limit`]); `hint` says what to do.
///
/// # Errors
/// [`Error::TooLarge`]; [`Error::Setting`] for a malformed [`ENV`].
pub fn check(what: &str, needed: Option<u64>, hint: &str) -> Result<()> {
    check_within(what, needed, limit()?, hint)
}

/// [`check`] against the budget `limit`.
///
/// # Errors
/// [`Error::TooLarge`] when `needed` is `None` or over `limit`.
pub fn check_within(what: &str, needed: Option<u64>, limit: u64, hint: &str) -> Result<()> {
    match needed {
        Some(n) if n <= limit => Ok(()),
        _ => Err(Error::TooLarge {
            what: what.into(),
            needed,
            limit,
            hint: hint.into(),
        }),
    }
}

/// Refuses a thread count of 0 or over [`MAX_THREADS`] (`None`, all
/// cores, is fine).
///
/// # Errors
/// [`Error::Option`] naming `threads`.
///
/// ```
/// assert!(vnn::budget::check_threads(Some(4)).is_ok());
/// assert!(vnn::budget::check_threads(None).is_ok());
/// let e = vnn::budget::check_threads(Some(100_000)).unwrap_err();
/// assert_eq!(e.to_string(), "invalid setting: threads must be at most 256, got 100000");
/// ```
pub fn check_threads(threads: Option<usize>) -> Result<()> {
    match threads {
        Some(0) => Err(Error::option("threads", "at least 1", 0)),
        Some(t) if t > MAX_THREADS => Err(Error::option(
            "threads",
            format!("at most {MAX_THREADS}"),
            t,
        )),
        _ => Ok(()),
    }
}

/// `text` with every setting in backquotes (`` `batch_size` ``) renamed by
/// `rename`, as a front end shows its options.
///
/// ```
/// let text = vnn::budget::with_options("lower `hidden` or set `batch_size`", |o| format!("--{}", o.replace('_', "-")));
/// assert_eq!(text, "lower --hidden or set --batch-size");
/// ```
pub fn with_options(text: &str, rename: impl Fn(&str) -> String) -> String {
    let mut out = String::with_capacity(text.len());
    for (i, part) in text.split('`').enumerate() {
        if i % 2 == 1 {
            out.push_str(&rename(part));
        } else {
            out.push_str(part);
        }
    }
    out
}

/// A byte count for a message: `123 bytes`, or with its size in GiB or
/// MiB (`25769803776 bytes (24.0 GiB)`).
pub(crate) fn shown_bytes(n: u64) -> String {
    let gib = n as f64 / (1u64 << 30) as f64;
    let mib = n as f64 / (1u64 << 20) as f64;
    if gib >= 1.0 {
        format!("{n} bytes ({gib:.1} GiB)")
    } else if mib >= 1.0 {
        format!("{n} bytes ({mib:.1} MiB)")
    } else {
        format!("{n} bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_lines_parse_and_unlimited_is_none() {
        let limits = "Max address space         unlimited            unlimited            bytes\n";
        assert_eq!(proc_value(limits, "Max address space"), None);
        let limits = "Max address space         4000000000           4000000000           bytes\n";
        assert_eq!(proc_value(limits, "Max address space"), Some(4_000_000_000));
        let meminfo = "MemTotal:  100 kB\nMemAvailable:   2048 kB\n";
        assert_eq!(proc_value(meminfo, "MemAvailable:"), Some(2048));
    }

    #[test]
    fn sums_and_products_do_not_wrap() {
        assert_eq!(sum(&[Some(1), Some(2)]), Some(3));
        assert_eq!(sum(&[Some(u64::MAX), Some(1)]), None);
        assert_eq!(sum(&[Some(1), None]), None);
        assert_eq!(bytes(&[1 << 32, 1 << 32]), None);
        assert_eq!(shown_bytes(3 << 30), "3221225472 bytes (3.0 GiB)");
    }
}
