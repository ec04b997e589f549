//! Which web origins may call: City-wide ones from the config, plus each
//! studio's own (cached in the directory). Checked only for calls that carry
//! an `Origin` header, i.e. from browsers; servers and grpcurl send none.

use std::sync::Arc;

use super::Directory;
use crate::domain::normalize_origins;

/// The origin policy: the config's origins and the directory's studios.
pub struct WebOrigins {
    /// `*` in the config: every origin.
    any: bool,
    city_wide: Box<[Box<str>]>,
    directory: Arc<Directory>,
}

impl WebOrigins {
    /// `allowed_origins` as the config gives them; a malformed one is an
    /// error naming it.
    pub fn new(allowed_origins: &[String], directory: Arc<Directory>) -> anyhow::Result<Self> {
        let (any, city_wide) = city_wide(allowed_origins)?;
        Ok(WebOrigins {
            any,
            city_wide: city_wide.into_iter().map(String::into_boxed_str).collect(),
            directory,
        })
    }

    /// Checks the config's origins without building the policy.
    pub fn check(allowed_origins: &[String]) -> anyhow::Result<()> {
        city_wide(allowed_origins).map(|_| ())
    }

    /// Whether `origin` is allowed City-wide.
    pub fn city_allows(&self, origin: &str) -> bool {
        self.any || self.city_wide.iter().any(|o| &**o == origin)
    }

    /// Whether a call from `origin` may use `studio_id`'s user tokens.
    pub fn allows_call(&self, studio_id: &str, origin: &str) -> bool {
        self.city_allows(origin) || self.directory.studio_allows_origin(studio_id, origin)
    }

    /// Whether a preflight from `origin` is answered: the studio the call
    /// will name is unknown yet, so any studio's origin is; the call itself
    /// is checked against its studio.
    pub fn allows_preflight(&self, origin: &str) -> bool {
        self.city_allows(origin) || self.directory.some_studio_allows_origin(origin)
    }
}

/// Whether the config lists `*`, and its other origins made canonical.
fn city_wide(allowed_origins: &[String]) -> anyhow::Result<(bool, Vec<String>)> {
    let any = allowed_origins.iter().any(|o| o.trim() == "*");
    let listed: Vec<String> = allowed_origins
        .iter()
        .filter(|o| o.trim() != "*")
        .cloned()
        .collect();
    let canonical =
        normalize_origins("[web] allowed_origins", &listed).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok((any, canonical))
}
