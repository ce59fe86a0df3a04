//! One text form per enum: the name it has in JSON and TOML is the name it prints as and the
//! name it parses from. [`named_enum!`](crate::named_enum) writes `as_str`, `Display` and
//! `FromStr` from one table, so nothing needs a `serde_json` round trip to get a name.

/// A name that is none of an enum's names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {value:?} (expected one of: {})", valid.join(", "))]
pub struct UnknownName {
    pub what: &'static str,
    pub value: String,
    pub valid: &'static [&'static str],
}

/// `named_enum!(Gil "GIL mode" { On => "on", Off => "off" })`: `Gil::ALL`, `as_str`,
/// `Display` (padding honoured) and `FromStr` (error [`UnknownName`] listing the valid names).
/// The names must be the serde names; `util::names` tests check every enum that uses this.
#[macro_export]
macro_rules! named_enum {
    ($ty:ident $what:literal { $($v:ident => $s:literal),+ $(,)? }) => {
        impl $ty {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$ty] = &[$($ty::$v),+];

            /// The name, as in JSON and TOML.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($ty::$v => $s),+
                }
            }
        }

        impl ::std::fmt::Display for $ty {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.pad(self.as_str())
            }
        }

        impl ::std::str::FromStr for $ty {
            type Err = $crate::util::names::UnknownName;

            fn from_str(s: &str) -> ::std::result::Result<Self, Self::Err> {
                match s {
                    $($s => Ok($ty::$v),)+
                    _ => Err($crate::util::names::UnknownName {
                        what: $what,
                        value: s.to_string(),
                        valid: &[$($s),+],
                    }),
                }
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use std::fmt::Display;
    use std::str::FromStr;

    use serde::Serialize;

    use super::UnknownName;

    /// Display is the serde name and parses back, for every variant.
    fn same_names<T>(all: &[T])
    where
        T: Serialize + Display + FromStr<Err = UnknownName> + PartialEq + std::fmt::Debug + Copy,
    {
        assert!(!all.is_empty());
        for v in all {
            let serde = serde_json::to_value(v).unwrap();
            assert_eq!(serde.as_str(), Some(v.to_string().as_str()), "{v:?}");
            assert_eq!(T::from_str(&v.to_string()), Ok(*v));
        }
    }

    #[test]
    fn display_is_the_serde_name_for_every_variant() {
        use crate::board::{Affinity, BuildSystem, Flasher, Gil, Kernel, LinkKind, Telemetry};
        same_names(Gil::ALL);
        same_names(Affinity::ALL);
        same_names(Kernel::ALL);
        same_names(Flasher::ALL);
        same_names(Telemetry::ALL);
        same_names(LinkKind::ALL);
        same_names(BuildSystem::ALL);
        same_names(crate::stress::Verdict::ALL);
        same_names(crate::stress::suite::Suite::ALL);
        same_names(crate::repl::Mode::ALL);
    }

    #[test]
    fn firmware_enums_display_their_serde_names() {
        use mpfr_firmware::protocol::{GilMode, TaskState};
        for g in GilMode::ALL {
            assert_eq!(serde_json::to_value(g).unwrap(), g.to_string(), "{g:?}");
        }
        for t in TaskState::ALL {
            assert_eq!(serde_json::to_value(t).unwrap(), t.to_string(), "{t:?}");
        }
    }

    #[test]
    fn unknown_names_list_the_valid_ones() {
        let e = "maybe".parse::<crate::board::Gil>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown GIL mode \"maybe\" (expected one of: on, off)"
        );
        assert_eq!(format!("[{:<5}]", crate::board::Gil::On), "[on   ]");
    }
}
