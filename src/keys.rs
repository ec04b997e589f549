//! Provider API keys at rest: sealed with ChaCha20-Poly1305 under a 32-byte
//! master key, with a random nonce per ciphertext and the provider id as
//! associated data (a ciphertext moved to another provider does not open).
//!
//! The master key comes from `DOWNCITY_MASTER_KEY` (base64), a key file, or
//! (`--dev`) `DATA_DIR/master.key`. A canary sealed under it is kept in the
//! settings, so a City started with another master key fails at once with a
//! clear error instead of sending garbage keys upstream.
//!
//! Neither `MasterKey` nor `ApiKey` prints its value: their `Debug` is
//! redacted, and the plaintext is reachable only through `expose`.

use std::fmt;
use std::path::Path;

use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};

use crate::domain::SealedKey;
use crate::error::{Error, Result};
use crate::store::Store;

/// The setting that holds the canary, base64 of a sealed known value.
pub const CANARY_SETTING: &str = "master_key_canary";
const CANARY_AD: &[u8] = b"downcity:master-key-canary";
const CANARY_TEXT: &[u8] = b"downcity master key canary v1";
const NONCE_LEN: usize = 12;
/// Bytes of a master key.
pub const MASTER_KEY_LEN: usize = 32;

/// The associated data that binds a sealed hook secret to its hook.
pub fn hook_secret_ad(hook_id: &str) -> String {
    format!("downcity:hook:{hook_id}")
}

/// An upstream provider's API key in plaintext. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    pub fn new(key: impl Into<String>) -> Self {
        ApiKey(key.into())
    }

    /// The plaintext, for the one place that sends it upstream.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The last 4 characters (fewer for a shorter key), safe to show.
    pub fn hint(&self) -> String {
        let chars: Vec<char> = self.0.chars().collect();
        chars[chars.len().saturating_sub(4)..].iter().collect()
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

/// The wire request that carries a provider API key: generated without a
/// `Debug` (build.rs), so that none can print the key.
impl fmt::Debug for crate::proto::UpsertProviderRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpsertProviderRequest")
            .field("provider", &self.provider)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// The key that seals provider API keys. Never printed.
#[derive(Clone)]
pub struct MasterKey(Key);

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

impl MasterKey {
    /// A fresh random key.
    pub fn generate() -> Self {
        let bytes: [u8; MASTER_KEY_LEN] = rand::random();
        MasterKey(Key::from(bytes))
    }

    /// From base64 of exactly 32 bytes (surrounding whitespace ignored).
    pub fn from_base64(text: &str) -> anyhow::Result<Self> {
        let bytes = BASE64
            .decode(text.trim())
            .context("the master key is not valid base64")?;
        let bytes: [u8; MASTER_KEY_LEN] = bytes.try_into().map_err(|b: Vec<u8>| {
            anyhow::anyhow!(
                "the master key must be {MASTER_KEY_LEN} bytes, base64-encoded; this one is {} bytes",
                b.len()
            )
        })?;
        Ok(MasterKey(Key::from(bytes)))
    }

    pub fn to_base64(&self) -> String {
        BASE64.encode(self.0.as_slice())
    }

    /// Reads a key file holding the base64 key.
    pub fn read_file(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the master key file {}", path.display()))?;
        Self::from_base64(&text)
            .with_context(|| format!("in the master key file {}", path.display()))
    }

    /// Reads the key file, creating it (mode 0600) with a new key when missing.
    pub fn read_or_create_file(path: &Path) -> anyhow::Result<Self> {
        if path.exists() {
            return Self::read_file(path);
        }
        let key = Self::generate();
        write_private(path, &format!("{}\n", key.to_base64()))
            .with_context(|| format!("creating the master key file {}", path.display()))?;
        tracing::info!(path = %path.display(), "created a new master key file");
        Ok(key)
    }

    fn cipher(&self) -> ChaCha20Poly1305 {
        ChaCha20Poly1305::new(&self.0)
    }

    fn seal_bytes(&self, plaintext: &[u8], ad: &[u8]) -> Vec<u8> {
        let nonce: [u8; NONCE_LEN] = rand::random();
        let sealed = self
            .cipher()
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: ad,
                },
            )
            .expect("ChaCha20-Poly1305 encrypts any message under 256 GiB");
        let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    fn open_bytes(&self, sealed: &[u8], ad: &[u8]) -> Option<Vec<u8>> {
        if sealed.len() < NONCE_LEN {
            return None;
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        self.cipher()
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: ad,
                },
            )
            .ok()
    }

    /// Seals a provider's API key, bound to the provider id.
    pub fn seal(&self, provider_id: &str, key: &ApiKey) -> SealedKey {
        SealedKey {
            ciphertext: self.seal_bytes(key.expose().as_bytes(), provider_id.as_bytes()),
            hint: key.hint(),
        }
    }

    /// Opens a provider's sealed API key.
    pub fn open(&self, provider_id: &str, sealed: &SealedKey) -> Result<ApiKey> {
        self.open_bytes(&sealed.ciphertext, provider_id.as_bytes())
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .map(ApiKey)
            .ok_or_else(|| {
                Error::Internal(format!(
                    "the API key of provider `{provider_id}` does not open under the master key"
                ))
            })
    }

    /// Seals another secret (a hook's signing secret), bound to `ad`.
    pub fn seal_secret(&self, ad: &str, secret: &str) -> Vec<u8> {
        self.seal_bytes(secret.as_bytes(), ad.as_bytes())
    }

    /// Opens a secret sealed by `seal_secret` with the same `ad`.
    pub fn open_secret(&self, ad: &str, sealed: &[u8]) -> Result<String> {
        self.open_bytes(sealed, ad.as_bytes())
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or_else(|| Error::Internal(format!("the secret of `{ad}` does not open")))
    }

    /// The canary setting's value for this key.
    pub fn canary(&self) -> String {
        BASE64.encode(self.seal_bytes(CANARY_TEXT, CANARY_AD))
    }

    fn opens_canary(&self, canary: &str) -> bool {
        BASE64
            .decode(canary)
            .ok()
            .and_then(|sealed| self.open_bytes(&sealed, CANARY_AD))
            .is_some_and(|text| text == CANARY_TEXT)
    }

    /// Checks the key against the store's canary, writing the canary if the
    /// store has none yet. A mismatch is a clear start-up error.
    pub async fn check_canary(&self, store: &dyn Store) -> anyhow::Result<()> {
        match store.get_setting(CANARY_SETTING).await? {
            Some(canary) if self.opens_canary(&canary) => Ok(()),
            Some(_) => bail!(
                "the master key does not match the one this store's provider keys were \
                 sealed with; start with the original DOWNCITY_MASTER_KEY / master_key_file, \
                 or re-key offline with `downcity rekey`"
            ),
            None => {
                store.put_setting(CANARY_SETTING, &self.canary()).await?;
                Ok(())
            }
        }
    }
}

/// Whether the store has provider keys sealed under some master key.
pub async fn store_has_master_key(store: &dyn Store) -> Result<bool> {
    Ok(store.get_setting(CANARY_SETTING).await?.is_some())
}

/// Re-seals every provider key, every hook secret and the canary under
/// `new`, in one transaction. Fails (changing nothing) if `old` is not the
/// store's key.
/// `old` may be `None` only for a store that holds no sealed key yet.
pub async fn rekey(
    store: &dyn Store,
    old: Option<&MasterKey>,
    new: &MasterKey,
) -> anyhow::Result<usize> {
    if let Some(canary) = store.get_setting(CANARY_SETTING).await? {
        match old {
            Some(old) if old.opens_canary(&canary) => {}
            Some(_) => bail!(
                "the current master key does not open this store's canary; nothing was changed"
            ),
            None => bail!(
                "this store's keys are sealed under a master key, and none is configured: \
                 set DOWNCITY_MASTER_KEY or master_key_file to the current key"
            ),
        }
    }
    let snapshot = store.catalog_snapshot().await?;
    let mut keys = Vec::new();
    for provider in &snapshot.providers {
        if let Some(sealed) = &provider.api_key {
            let old = old.context("a provider key is sealed, but no master key is configured")?;
            let key = old.open(&provider.id, sealed)?;
            keys.push((provider.id.clone(), new.seal(&provider.id, &key)));
        }
    }
    let mut hook_secrets = Vec::new();
    for hook in store.all_hooks().await? {
        let old = old.context("a hook secret is sealed, but no master key is configured")?;
        let ad = hook_secret_ad(&hook.id);
        let secret = old.open_secret(&ad, &hook.secret)?;
        hook_secrets.push((hook.id, new.seal_secret(&ad, &secret)));
    }
    let settings = [(CANARY_SETTING.to_string(), new.canary())];
    store.reseal(&keys, &hook_secrets, &settings).await?;
    Ok(keys.len())
}

/// Writes a file only its owner can read.
pub fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_and_open_bind_the_provider_id() {
        let master = MasterKey::generate();
        let key = ApiKey::new("sk-test-0123456789abcd");
        let sealed = master.seal("openai", &key);
        assert_eq!(sealed.hint, "abcd");
        assert!(
            !sealed
                .ciphertext
                .windows(4)
                .any(|w| w == b"0123" || w == b"abcd")
        );
        assert_eq!(master.open("openai", &sealed).unwrap(), key);
        assert!(master.open("other", &sealed).is_err());
        assert!(MasterKey::generate().open("openai", &sealed).is_err());
        // A fresh nonce every time.
        assert_ne!(master.seal("openai", &key).ciphertext, sealed.ciphertext);
    }

    #[test]
    fn debug_is_redacted() {
        let key = ApiKey::new("sk-secret-value");
        assert!(!format!("{key:?}").contains("secret"));
        let request = crate::proto::UpsertProviderRequest {
            provider: None,
            api_key: Some("sk-secret-value".into()),
        };
        assert!(!format!("{request:?}").contains("secret"));
        let master = MasterKey::generate();
        assert!(!format!("{master:?}").contains(&master.to_base64()));
    }

    #[test]
    fn base64_round_trip_and_length_check() {
        let master = MasterKey::generate();
        let back = MasterKey::from_base64(&master.to_base64()).unwrap();
        assert!(back.opens_canary(&master.canary()));
        assert!(MasterKey::from_base64("c2hvcnQ=").is_err());
        assert!(!MasterKey::generate().opens_canary(&master.canary()));
    }

    #[test]
    fn hint_of_short_and_multibyte_keys() {
        assert_eq!(ApiKey::new("ab").hint(), "ab");
        assert_eq!(ApiKey::new("xxééé1").hint(), "ééé1");
    }
}
