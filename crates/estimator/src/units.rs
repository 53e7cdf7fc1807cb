//! Byte quantities and checked arithmetic.
//!
//! Bytes are exact `u64`. Binary units (KiB, MiB, GiB = 2^10, 2^20, 2^30) are what the engines and
//! drivers print, so they are what we show; decimal units (GB = 10^9) only appear where we say "GB".

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::fmt;

/// 2^30 bytes.
pub const GIB: u64 = 1 << 30;
/// 2^20 bytes.
pub const MIB: u64 = 1 << 20;

/// An exact number of bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Bytes(pub u64);

impl Bytes {
    pub const ZERO: Bytes = Bytes(0);
    /// Bytes as GiB (2^30), for display only.
    pub fn gib(self) -> f64 {
        self.0 as f64 / GIB as f64
    }
    /// Bytes as MiB (2^20), for display only.
    pub fn mib(self) -> f64 {
        self.0 as f64 / MIB as f64
    }
    /// Checked sum.
    pub fn add(self, other: Bytes, what: &str) -> Result<Bytes> {
        self.0.checked_add(other.0).map(Bytes).ok_or_else(|| Error::overflow(what))
    }
    /// Checked product with a count.
    pub fn times(self, n: u64, what: &str) -> Result<Bytes> {
        self.0.checked_mul(n).map(Bytes).ok_or_else(|| Error::overflow(what))
    }
    /// Saturating difference (free memory never goes below zero).
    pub fn saturating_sub(self, other: Bytes) -> Bytes {
        Bytes(self.0.saturating_sub(other.0))
    }
    /// GiB given as a float (a GPU size, a log figure) to bytes, rounded down; negative or
    /// non-finite values are an error naming `what`.
    pub fn from_gib(gib: f64, what: &str) -> Result<Bytes> {
        if !gib.is_finite() || gib < 0.0 || gib > 1.0e9 {
            return Err(Error::invalid(what, gib, "a finite, non-negative number of GiB below 1e9"));
        }
        Ok(Bytes((gib * GIB as f64).floor() as u64))
    }
}

impl fmt::Display for Bytes {
    /// Human form with a binary unit: `15.00 GiB`, `128.0 KiB`, `512 B` (rounded half up, in
    /// integer arithmetic: exact and several times faster than float formatting).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        if b >= GIB {
            write_fixed(f, b, GIB, 2)?;
            f.write_str(" GiB")
        } else if b >= MIB {
            write_fixed(f, b, MIB, 1)?;
            f.write_str(" MiB")
        } else if b >= 1024 {
            write_fixed(f, b, 1024, 1)?;
            f.write_str(" KiB")
        } else {
            write!(f, "{b} B")
        }
    }
}

/// Writes `value / unit` with `decimals` decimals (1 or 2), rounded half up.
fn write_fixed(f: &mut fmt::Formatter<'_>, value: u64, unit: u64, decimals: u32) -> fmt::Result {
    let scale = 10u128.pow(decimals);
    let scaled = (value as u128 * scale + unit as u128 / 2) / unit as u128;
    let (whole, frac) = (scaled / scale, scaled % scale);
    if decimals == 2 {
        write!(f, "{whole}.{frac:02}")
    } else {
        write!(f, "{whole}.{frac}")
    }
}

/// A non-negative float with `decimals` decimals (0 to 3), formatted through integers (float
/// formatting with a precision is the slow path of `core::fmt`); non-finite values print `n/a`.
pub fn fixed(x: f64, decimals: u32) -> String {
    if !x.is_finite() || x < 0.0 || x > 1e15 {
        return if x.is_finite() && x < 0.0 { format!("-{}", fixed(-x, decimals)) } else { "n/a".into() };
    }
    let scale = 10u64.pow(decimals.min(3));
    let scaled = (x * scale as f64).round() as u64;
    let (whole, frac) = (scaled / scale, scaled % scale);
    match decimals.min(3) {
        0 => whole.to_string(),
        1 => format!("{whole}.{frac}"),
        2 => format!("{whole}.{frac:02}"),
        _ => format!("{whole}.{frac:03}"),
    }
}

/// `n` of a countable `noun`, in the singular for one: "1 request", "32 requests", "1 token".
/// The page, its prerendered first frame and the runner print requests, tokens and GPUs with it.
pub fn count(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// `12.34 GiB`: bytes as GiB with two decimals, the unit engines print.
pub fn gib_text(bytes: u64) -> String {
    struct G(u64);
    impl fmt::Display for G {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write_fixed(f, self.0, GIB, 2)?;
            f.write_str(" GiB")
        }
    }
    G(bytes).to_string()
}

/// `a * b` with overflow as an error.
pub fn mul(a: u64, b: u64, what: &str) -> Result<u64> {
    a.checked_mul(b).ok_or_else(|| Error::overflow(what))
}

/// `a + b` with overflow as an error.
pub fn add(a: u64, b: u64, what: &str) -> Result<u64> {
    a.checked_add(b).ok_or_else(|| Error::overflow(what))
}

/// Product of several factors with overflow as an error.
pub fn product(factors: &[u64], what: &str) -> Result<u64> {
    factors.iter().try_fold(1u64, |acc, &f| mul(acc, f, what))
}

/// `ceil(a / b)`; `b == 0` gives 0 (callers validate divisors first).
pub fn div_ceil(a: u64, b: u64) -> u64 {
    if b == 0 {
        0
    } else {
        a.div_ceil(b)
    }
}

/// `a * num / den` rounded up, without intermediate overflow for realistic values.
pub fn mul_ratio_ceil(a: u64, num: u64, den: u64, what: &str) -> Result<u64> {
    if den == 0 {
        return Err(Error::overflow(what));
    }
    let wide = (a as u128) * (num as u128);
    let q = wide.div_ceil(den as u128);
    u64::try_from(q).map_err(|_| Error::overflow(what))
}

/// Whether a quantity is exact arithmetic or a model of something we cannot compute exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Basis {
    /// Follows from the config and the scenario by arithmetic alone.
    Exact,
    /// A documented model (activation peaks, runtime overheads); see its derivation for the error bars.
    Modelled,
}

/// A byte figure together with how it was obtained: the formula, the same formula with the numbers
/// substituted, and whether it is exact or modelled. Every number a user sees is one of these.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Figure {
    pub name: Cow<'static, str>,
    pub bytes: Bytes,
    pub basis: Basis,
    /// The formula in symbols, e.g. `layers x 2 x kv_heads x head_dim x kv_bytes`.
    pub formula: Cow<'static, str>,
    /// The formula with values, e.g. `32 x 2 x 8 x 128 x 2 B = 131072 B`.
    pub substituted: String,
    /// Inputs and defaults the figure used, and any caveat.
    pub notes: Vec<String>,
}

impl Figure {
    pub fn exact(name: &'static str, bytes: Bytes, formula: impl Into<Cow<'static, str>>, substituted: impl Into<String>) -> Self {
        Figure { name: Cow::Borrowed(name), bytes, basis: Basis::Exact, formula: formula.into(), substituted: substituted.into(), notes: vec![] }
    }
    pub fn modelled(name: &'static str, bytes: Bytes, formula: impl Into<Cow<'static, str>>, substituted: impl Into<String>) -> Self {
        Figure { name: Cow::Borrowed(name), bytes, basis: Basis::Modelled, formula: formula.into(), substituted: substituted.into(), notes: vec![] }
    }
    pub fn note(mut self, n: impl Into<String>) -> Self {
        self.notes.push(n.into());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn display_uses_binary_units() {
        assert_eq!(Bytes(512).to_string(), "512 B");
        assert_eq!(Bytes(131_072).to_string(), "128.0 KiB");
        assert_eq!(Bytes(16 * GIB).to_string(), "16.00 GiB");
        assert_eq!(Bytes(GIB + GIB / 200 + 1).to_string(), "1.01 GiB"); // just above 1.005 rounds up
        assert_eq!(Bytes(GIB + GIB / 200).to_string(), "1.00 GiB"); // just below stays
        assert_eq!(Bytes(1536 * MIB).to_string(), "1.50 GiB");
        assert_eq!(Bytes(1_572_864).to_string(), "1.5 MiB");
        assert_eq!(gib_text(80 * GIB - 1), "80.00 GiB");
        assert_eq!(fixed(8.0302, 3), "8.030");
        assert_eq!(fixed(2.5, 0), "3");
        assert_eq!(fixed(-1.25, 1), "-1.3");
        assert_eq!(fixed(f64::NAN, 2), "n/a");
    }
    #[test]
    fn overflow_is_an_error() {
        assert!(Bytes(u64::MAX).add(Bytes(1), "x").is_err());
        assert!(mul(u64::MAX, 2, "x").is_err());
        assert_eq!(mul_ratio_ceil(4096, 34, 32, "q8").unwrap(), 4352);
    }
    #[test]
    fn from_gib_rejects_nan() {
        assert!(Bytes::from_gib(f64::NAN, "gpu").is_err());
        assert!(Bytes::from_gib(-1.0, "gpu").is_err());
        assert_eq!(Bytes::from_gib(1.0, "gpu").unwrap(), Bytes(GIB));
    }
}
