//! Standard Webhooks signing: `webhook-id`, `webhook-timestamp` and
//! `webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">`, keyed
//! with the base64-decoded part of a `whsec_...` secret.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The prefix of a signing secret.
pub const SECRET_PREFIX: &str = "whsec_";
/// Random bytes in a new secret.
const SECRET_BYTES: usize = 32;

/// A hook's signing key: the decoded bytes of its `whsec_...` secret.
#[derive(Clone)]
pub struct SigningKey(Vec<u8>);

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(<redacted>)")
    }
}

impl SigningKey {
    /// From a `whsec_<base64>` secret (the prefix is optional, as in the spec's libraries).
    pub fn from_secret(secret: &str) -> Option<Self> {
        let encoded = secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret);
        BASE64.decode(encoded).ok().map(SigningKey)
    }

    /// The `webhook-signature` header value of one message.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()))
    }
}

/// A new random `whsec_...` secret.
pub fn generate_secret() -> String {
    let bytes: [u8; SECRET_BYTES] = rand::random();
    format!("{SECRET_PREFIX}{}", BASE64.encode(bytes))
}

/// The three Standard Webhooks headers of a message sent now.
pub fn headers(key: &SigningKey, id: &str, body: &[u8]) -> [(&'static str, String); 3] {
    let timestamp = crate::domain::now_ms() / 1000;
    [
        ("webhook-id", id.to_string()),
        ("webhook-timestamp", timestamp.to_string()),
        ("webhook-signature", key.sign(id, timestamp, body)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_standard_webhooks_test_vector() {
        // The example of the Standard Webhooks spec and its reference libraries.
        let key = SigningKey::from_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert_eq!(
            key.sign(
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1_614_265_330,
                br#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn generated_secrets_decode() {
        let secret = generate_secret();
        assert!(secret.starts_with(SECRET_PREFIX));
        assert_eq!(
            SigningKey::from_secret(&secret).unwrap().0.len(),
            SECRET_BYTES
        );
        assert_ne!(secret, generate_secret());
        assert!(!format!("{:?}", SigningKey::from_secret(&secret).unwrap()).contains(&secret[6..]));
    }
}
