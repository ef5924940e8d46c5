//! Typed ids, so that a program id cannot be passed where a link or map id
//! is meant. Each is the bare `u32` the kernel or bpfman allocates; it prints,
//! parses and serializes as that number, so outputs do not change. Raw `u32`
//! stays only at the edges: the wire, SQL columns and bpf(2) structs.

use std::fmt;
use std::num::ParseIntError;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
        )]
        #[serde(transparent)]
        #[repr(transparent)]
        pub struct $name(pub u32);

        impl $name {
            /// The bare number.
            pub const fn get(self) -> u32 {
                self.0
            }
        }

        impl From<u32> for $name {
            fn from(v: u32) -> Self {
                $name(v)
            }
        }

        impl From<$name> for u32 {
            fn from(v: $name) -> u32 {
                v.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl FromStr for $name {
            type Err = ParseIntError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                s.parse().map($name)
            }
        }
    };
}

id_type!(
    /// A kernel program id. bpfman uses the kernel's id as the program's id.
    ProgramId
);
id_type!(
    /// A bpfman link id: allocated by bpfman, stable across restarts (the
    /// kernel's link id changes when a link is re-created).
    LinkId
);
id_type!(
    /// A kernel link id (`bpf_link_info.id`).
    KernelLinkId
);
id_type!(
    /// A kernel map id.
    MapId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_print_parse_and_serialize_as_the_bare_number() {
        let id: ProgramId = "42".parse().unwrap();
        assert_eq!(id, ProgramId(42));
        assert_eq!(id.to_string(), "42");
        assert_eq!(serde_json::to_string(&id).unwrap(), "42");
        assert_eq!(serde_json::from_str::<MapId>("7").unwrap(), MapId(7));
        assert!("x".parse::<LinkId>().is_err());
        assert_eq!(u32::from(KernelLinkId(3)), 3);
    }
}
