//! Studios and the credentials that act for them.

use super::Millis;
use crate::error::{Error, Result, Violation};

/// Whether a studio may make calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StudioStatus {
    Active,
    Suspended,
}

super::spelled_enum!(StudioStatus {
    Active => "active",
    Suspended => "suspended",
});

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StudioRecord {
    pub id: String,
    pub display_name: String,
    pub status: StudioStatus,
    pub create_ms: Millis,
    pub update_ms: Millis,
    /// Web origins (canonical, see `normalize_origin`) whose pages may call
    /// with this studio's user tokens.
    pub allowed_origins: Vec<String>,
}

/// A studio's bearer key. Only the SHA-256 of the secret is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StudioKeyRecord {
    pub id: String,
    pub studio_id: String,
    pub display_name: String,
    pub secret_hash: [u8; 32],
    pub create_ms: Millis,
    pub revoke_ms: Option<Millis>,
}

/// An end user's bearer token. Only the SHA-256 of the secret is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserTokenRecord {
    pub id: String,
    pub studio_id: String,
    pub user_id: String,
    pub secret_hash: [u8; 32],
    pub create_ms: Millis,
    pub expire_ms: Option<Millis>,
    pub revoke_ms: Option<Millis>,
}

/// Studio ids: 1 to 63 of a-z, 0-9, '-' and '_', starting with a letter.
pub fn validate_studio_id(id: &str) -> Result<()> {
    let mut chars = id.chars();
    let starts_with_letter = chars.next().is_some_and(|c| c.is_ascii_lowercase());
    let rest_ok =
        chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if starts_with_letter && rest_ok && id.len() <= 63 {
        Ok(())
    } else {
        Err(Error::InvalidArgument(vec![Violation::new(
            "studio_id",
            "1 to 63 characters of a-z, 0-9, '-' and '_', starting with a letter",
        )]))
    }
}
