//! The records and enums every layer shares: what a studio, a model, a
//! usage row or a hook *is*, independent of where it is stored or how it
//! travels. The bottom layer beside `error`: it imports nothing else of City's.

mod catalog;
mod hooks;
mod limits;
mod origin;
mod studio;
mod usage;

pub use catalog::{
    DEFAULT_MAX_INPUT_TOKENS, DEFAULT_MAX_OUTPUT_TOKENS, MAX_PROVIDER_TIMEOUT_MS, ModelRecord,
    Pathway, ProviderKind, ProviderRecord, ProviderTimeouts, SealedKey, check_catalog_id,
};
pub use hooks::{
    AttemptOutcome, DEFAULT_HOOK_TIMEOUT_MS, DeliveryFilter, DeliveryRecord, DeliveryState,
    FailurePolicy, HookEvent, HookRecord, MAX_HOOK_TIMEOUT_MS,
};
pub use limits::{LimitTarget, LimitValues, LimitsRecord};
pub use origin::{MAX_ORIGINS, normalize_origin, normalize_origins};
pub use studio::{
    StudioKeyRecord, StudioRecord, StudioStatus, UserTokenRecord, validate_studio_id,
};
pub use usage::{GroupBy, UsageAggregateRow, UsageFilter, UsageRow};

/// Milliseconds since the Unix epoch, the time unit of every record.
pub type Millis = i64;

/// Now, in milliseconds since the Unix epoch.
pub fn now_ms() -> Millis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as Millis)
        .unwrap_or_default()
}

/// A name that is not one of an enum's spellings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} `{given}`; expected one of: {expected}")]
pub struct UnknownName {
    pub what: &'static str,
    pub given: String,
    pub expected: String,
}

/// Gives a fieldless enum its one spelling, shared by config files, the
/// store, the CLI and logs: `ALL`, `as_str`, `parse`, `Display`, `FromStr`
/// and serde as that string.
macro_rules! spelled_enum {
    ($name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            pub fn parse(s: &str) -> Option<Self> {
                match s {
                    $($text => Some($name::$variant),)+
                    _ => None,
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::domain::UnknownName;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s).ok_or_else(|| $crate::domain::UnknownName {
                    what: stringify!($name),
                    given: s.to_owned(),
                    expected: [$($text),+].join(", "),
                })
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}
pub(crate) use spelled_enum;
