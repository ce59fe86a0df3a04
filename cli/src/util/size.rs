//! Byte sizes as people write them in board files and on the command line.
//!
//! `8192`, `8k`, `8K`, `8KiB`, `8KB`, `1M`, `1MiB` are accepted. Embedded sizes are powers of
//! two, so `k`, `K`, `KB` and `KiB` all mean 1024 bytes (as in linker scripts and datasheets).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A size in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Size(pub u64);

/// Why a size did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SizeError {
    #[error("empty size")]
    Empty,
    #[error("`{0}` is not a size: expected a number of bytes such as 8192, 8k, 8KiB or 1M")]
    Invalid(String),
    #[error("unknown unit `{unit}` in `{input}`: use no unit (bytes), k/K/KB/KiB or M/MB/MiB")]
    Unit { input: String, unit: String },
    #[error("`{0}` is too large")]
    Overflow(String),
}

impl Size {
    pub const fn bytes(self) -> u64 {
        self.0
    }

    pub const fn kib(n: u64) -> Self {
        Size(n * 1024)
    }
}

impl FromStr for Size {
    type Err = SizeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        if t.is_empty() {
            return Err(SizeError::Empty);
        }
        let split = t
            .find(|c: char| !c.is_ascii_digit() && c != '_')
            .unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let num: String = num.chars().filter(|&c| c != '_').collect();
        if num.is_empty() {
            return Err(SizeError::Invalid(s.to_string()));
        }
        let n: u64 = num
            .parse()
            .map_err(|_| SizeError::Overflow(s.to_string()))?;
        let mult: u64 = match unit.trim() {
            "" | "B" | "b" => 1,
            "k" | "K" | "KB" | "kB" | "KiB" | "kiB" | "kb" => 1024,
            "m" | "M" | "MB" | "MiB" | "mb" => 1024 * 1024,
            other => {
                if other.chars().any(|c| c.is_ascii_digit() || c == '.') {
                    return Err(SizeError::Invalid(s.to_string()));
                }
                return Err(SizeError::Unit {
                    input: s.to_string(),
                    unit: other.to_string(),
                });
            }
        };
        n.checked_mul(mult)
            .map(Size)
            .ok_or_else(|| SizeError::Overflow(s.to_string()))
    }
}

impl fmt::Display for Size {
    /// The shortest exact form: `8KiB`, `1MiB`, `1000`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        if b != 0 && b.is_multiple_of(1024 * 1024) {
            write!(f, "{}MiB", b / (1024 * 1024))
        } else if b != 0 && b.is_multiple_of(1024) {
            write!(f, "{}KiB", b / 1024)
        } else {
            write!(f, "{b}")
        }
    }
}

impl Serialize for Size {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.0)
    }
}

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Size;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size in bytes (8192) or a string such as \"8KiB\"")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Size, E> {
                Ok(Size(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Size, E> {
                u64::try_from(v)
                    .map(Size)
                    .map_err(|_| E::custom("a size cannot be negative"))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Size, E> {
                v.parse().map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_documented_forms() {
        for (s, n) in [
            ("8192", 8192),
            ("8k", 8192),
            ("8K", 8192),
            ("8KiB", 8192),
            ("8KB", 8192),
            ("192K", 196_608),
            ("1M", 1_048_576),
            ("2MiB", 2_097_152),
            (" 64 KiB ", 65_536),
            ("16_384", 16_384),
            ("0", 0),
        ] {
            assert_eq!(s.parse::<Size>(), Ok(Size(n)), "{s}");
        }
    }

    #[test]
    fn rejects_bad_input_with_a_reason() {
        assert_eq!("".parse::<Size>(), Err(SizeError::Empty));
        assert!(matches!("KiB".parse::<Size>(), Err(SizeError::Invalid(_))));
        assert!(matches!("8.5K".parse::<Size>(), Err(SizeError::Invalid(_))));
        assert!(matches!("-1".parse::<Size>(), Err(SizeError::Invalid(_))));
        assert!(matches!("8GB".parse::<Size>(), Err(SizeError::Unit { unit, .. }) if unit == "GB"));
        assert!(matches!(
            "99999999999999999999".parse::<Size>(),
            Err(SizeError::Overflow(_))
        ));
        assert!(matches!(
            "18446744073709551615M".parse::<Size>(),
            Err(SizeError::Overflow(_))
        ));
    }

    #[test]
    fn displays_the_shortest_exact_form() {
        assert_eq!(Size(8192).to_string(), "8KiB");
        assert_eq!(Size(1 << 20).to_string(), "1MiB");
        assert_eq!(Size(1000).to_string(), "1000");
        assert_eq!(Size(0).to_string(), "0");
        for n in [1u64, 1023, 1024, 1536, 196_608, 3 << 20] {
            assert_eq!(Size(n).to_string().parse::<Size>(), Ok(Size(n)));
        }
    }
}
