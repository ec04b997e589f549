//! Bearer secrets: `<prefix>_<id>_<secret>`. The id is public and used for
//! look-up; only the SHA-256 of the secret part is stored, and comparison is
//! constant-time. The secret part carries 192 bits of randomness, so a fast
//! hash is enough (there is nothing to brute-force, unlike a password).

use rand::Rng;
use rand::distr::Alphanumeric;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Prefix of studio keys.
pub const STUDIO_KEY_PREFIX: &str = "dck";
/// Prefix of user tokens.
pub const USER_TOKEN_PREFIX: &str = "dcu";
/// Prefix of generated admin keys.
pub const ADMIN_KEY_PREFIX: &str = "dca";

const ID_LEN: usize = 12;
const SECRET_LEN: usize = 32;

/// A freshly minted secret: the full bearer string (shown once) and what is stored.
pub struct Minted {
    pub id: String,
    pub bearer: String,
    pub hash: [u8; 32],
}

fn random_alphanumeric(len: usize) -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

/// A random lowercase id, safe inside a bearer string and as a studio id.
pub fn random_id(len: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..len)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// Mints a new `<prefix>_<id>_<secret>` bearer.
pub fn mint(prefix: &str) -> Minted {
    let id = random_id(ID_LEN);
    let secret = random_alphanumeric(SECRET_LEN);
    let hash = hash_secret(&secret);
    Minted {
        bearer: format!("{prefix}_{id}_{secret}"),
        id,
        hash,
    }
}

/// Mints an admin key; it has no id, only one exists.
pub fn mint_admin_key() -> String {
    format!("{ADMIN_KEY_PREFIX}_{}", random_alphanumeric(SECRET_LEN + 8))
}

pub fn hash_secret(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// Splits a bearer into (id, secret) when it has the given prefix.
pub fn split_bearer<'a>(bearer: &'a str, prefix: &str) -> Option<(&'a str, &'a str)> {
    let rest = bearer.strip_prefix(prefix)?.strip_prefix('_')?;
    let (id, secret) = rest.split_once('_')?;
    (!id.is_empty() && !secret.is_empty()).then_some((id, secret))
}

/// Constant-time check of a presented secret against a stored hash.
pub fn verify(secret: &str, stored: &[u8; 32]) -> bool {
    hash_secret(secret).ct_eq(stored).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_bearer_splits_and_verifies() {
        let minted = mint(USER_TOKEN_PREFIX);
        let (id, secret) = split_bearer(&minted.bearer, USER_TOKEN_PREFIX).unwrap();
        assert_eq!(id, minted.id);
        assert!(verify(secret, &minted.hash));
        assert!(!verify("wrong", &minted.hash));
    }

    #[test]
    fn malformed_bearers_do_not_split() {
        for bad in [
            "",
            "dcu",
            "dcu_",
            "dcu__x",
            "dcu_id_",
            "dck_id_secret",
            "xdcu_a_b",
        ] {
            assert!(split_bearer(bad, USER_TOKEN_PREFIX).is_none(), "{bad}");
        }
    }
}
