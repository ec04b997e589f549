//! The in-memory directory of studios, studio keys and user tokens.
//!
//! Authentication reads only this directory (no database on the hot path).
//! Every admin write goes to the store first and then to the directory, so a
//! revocation or a suspension takes effect on the very next call. Locks are
//! std locks held for a map look-up only, never across an await.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use super::secret::{self, Minted};
use super::{AdminCaller, UserCaller};
use crate::domain::validate_studio_id;
use crate::domain::{Millis, StudioKeyRecord, StudioRecord, StudioStatus, UserTokenRecord, now_ms};
use crate::error::{Error, Result};
use crate::store::{PageQuery, Snapshot, Store};

struct TokenEntry {
    studio_id: Arc<str>,
    user_id: Arc<str>,
    hash: [u8; 32],
    expire_ms: Option<Millis>,
    revoked: bool,
}

struct KeyEntry {
    studio_id: Arc<str>,
    hash: [u8; 32],
    revoked: bool,
}

struct StudioEntry {
    status: StudioStatus,
    allowed_origins: Box<[Box<str>]>,
}

#[derive(Default)]
struct Maps {
    studios: HashMap<Arc<str>, StudioEntry>,
    /// Every origin some studio allows, for preflights.
    origins_of_any_studio: HashSet<Box<str>>,
    keys: HashMap<String, KeyEntry>,
    tokens: HashMap<String, TokenEntry>,
}

impl Maps {
    /// Adds or replaces one studio (an admin write).
    fn put_studio(&mut self, studio: &StudioRecord) {
        let previous = self.insert_studio(studio);
        let had_origins = previous.is_some_and(|p| !p.allowed_origins.is_empty());
        if had_origins || !studio.allowed_origins.is_empty() {
            // Studio writes are rare: rebuilding the union keeps it exact.
            self.collect_origins();
        }
    }

    fn insert_studio(&mut self, studio: &StudioRecord) -> Option<StudioEntry> {
        let entry = StudioEntry {
            status: studio.status,
            allowed_origins: studio
                .allowed_origins
                .iter()
                .map(|o| o.as_str().into())
                .collect(),
        };
        self.studios.insert(studio.id.as_str().into(), entry)
    }

    fn collect_origins(&mut self) {
        self.origins_of_any_studio = self
            .studios
            .values()
            .flat_map(|s| s.allowed_origins.iter().cloned())
            .collect();
    }
}

/// What an UpdateStudio changes; `None` leaves a field as it is.
#[derive(Debug, Default)]
pub struct StudioChanges {
    pub display_name: Option<String>,
    pub status: Option<StudioStatus>,
    /// Canonical origins (see `domain::normalize_origins`).
    pub allowed_origins: Option<Vec<String>>,
}

/// Studios and credentials, cached for authentication and written through.
pub struct Directory {
    store: Arc<dyn Store>,
    admin_key_hash: RwLock<[u8; 32]>,
    maps: RwLock<Maps>,
    /// One admin write at a time (read, store write, cache update), so
    /// racing writes leave the cache as the store ends up: never older.
    writes: tokio::sync::Mutex<()>,
}

impl Directory {
    /// `admin_key_hash` is the SHA-256 of the operator's admin key.
    pub fn new(store: Arc<dyn Store>, admin_key_hash: [u8; 32], snapshot: &Snapshot) -> Self {
        let directory = Directory {
            store,
            admin_key_hash: RwLock::new(admin_key_hash),
            maps: RwLock::default(),
            writes: tokio::sync::Mutex::new(()),
        };
        directory.load(snapshot);
        directory
    }

    /// Replaces the cached state with a fresh snapshot of the store.
    pub fn load(&self, snapshot: &Snapshot) {
        let mut maps = Maps::default();
        for studio in &snapshot.studios {
            maps.insert_studio(studio);
        }
        maps.collect_origins();
        for key in &snapshot.studio_keys {
            maps.keys.insert(key.id.clone(), key_entry(key));
        }
        for token in &snapshot.user_tokens {
            maps.tokens.insert(token.id.clone(), token_entry(token));
        }
        *self.maps.write().expect("directory lock") = maps;
    }

    /// Re-reads studios and credentials from the store (a write made on
    /// another replica). Waits for this replica's writes, so the snapshot
    /// installed is never older than one of them.
    pub async fn reload(&self) -> Result<()> {
        let _one_write = self.writes.lock().await;
        let snapshot = self.store.snapshot().await?;
        self.load(&snapshot);
        Ok(())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Maps> {
        self.maps.read().expect("directory lock")
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Maps> {
        self.maps.write().expect("directory lock")
    }

    /// Authenticates an end user's call: a user token of an active studio
    /// that matches the `x-studio-id` the call names.
    pub fn authenticate_user(
        &self,
        studio_id: &str,
        bearer: &str,
        now: Millis,
    ) -> Result<UserCaller> {
        self.authenticate_user_token(Some(studio_id), bearer, now)
    }

    /// Authenticates a user token alone or, when `studio_id` is given, a
    /// token that must belong to it. A token's id leads to its entry, and
    /// the entry names its studio: tools that send only an API key (the
    /// OpenAI-compatible face) need no studio header.
    pub fn authenticate_user_token(
        &self,
        studio_id: Option<&str>,
        bearer: &str,
        now: Millis,
    ) -> Result<UserCaller> {
        let (id, presented) =
            secret::split_bearer(bearer, secret::USER_TOKEN_PREFIX).ok_or(Error::TokenInvalid)?;
        let maps = self.read();
        let token = maps.tokens.get(id).ok_or(Error::TokenInvalid)?;
        if !secret::verify(presented, &token.hash) {
            return Err(Error::TokenInvalid);
        }
        if token.revoked {
            return Err(Error::TokenRevoked);
        }
        if token.expire_ms.is_some_and(|expiry| expiry <= now) {
            return Err(Error::TokenExpired);
        }
        if let Some(studio_id) = studio_id
            && &*token.studio_id != studio_id
        {
            return Err(Error::StudioMismatch {
                studio_id: studio_id.to_string(),
            });
        }
        ensure_active(&maps, &token.studio_id)?;
        Ok(UserCaller {
            studio_id: token.studio_id.clone(),
            user_id: token.user_id.clone(),
        })
    }

    /// Authenticates an admin call: the operator's admin key or a studio key.
    pub fn authenticate_admin(&self, bearer: &str) -> Result<AdminCaller> {
        if let Some((id, presented)) = secret::split_bearer(bearer, secret::STUDIO_KEY_PREFIX) {
            let maps = self.read();
            let key = maps.keys.get(id).ok_or(Error::TokenInvalid)?;
            if !secret::verify(presented, &key.hash) {
                return Err(Error::TokenInvalid);
            }
            if key.revoked {
                return Err(Error::TokenRevoked);
            }
            return Ok(AdminCaller::Studio(key.studio_id.clone()));
        }
        if secret::split_bearer(bearer, secret::USER_TOKEN_PREFIX).is_some() {
            return Err(Error::PermissionDenied {
                method: "AdminService",
            });
        }
        if secret::verify(bearer, &self.admin_key_hash.read().expect("admin key lock")) {
            return Ok(AdminCaller::Operator);
        }
        Err(Error::TokenInvalid)
    }

    /// Replaces the admin key (the store keeps the same hash).
    pub fn set_admin_key_hash(&self, hash: [u8; 32]) {
        *self.admin_key_hash.write().expect("admin key lock") = hash;
    }

    /// Whether `bearer` is a live user token of `studio_id` (used by `--dev`
    /// to reuse the token it wrote earlier).
    pub fn is_live_user_token(&self, studio_id: &str, bearer: &str) -> bool {
        self.authenticate_user(studio_id, bearer, now_ms()).is_ok()
    }

    pub async fn create_studio(
        &self,
        id: Option<String>,
        display_name: String,
    ) -> Result<StudioRecord> {
        let _one_write = self.writes.lock().await;
        let id = match id.filter(|id| !id.is_empty()) {
            Some(id) => {
                validate_studio_id(&id)?;
                id
            }
            None => format!("studio-{}", secret::random_id(10)),
        };
        let now = now_ms();
        let studio = StudioRecord {
            id,
            display_name,
            status: StudioStatus::Active,
            create_ms: now,
            update_ms: now,
            allowed_origins: Vec::new(),
        };
        self.store.insert_studio(&studio).await?;
        self.write().put_studio(&studio);
        Ok(studio)
    }

    pub async fn get_studio(&self, id: &str) -> Result<StudioRecord> {
        self.store
            .get_studio(id)
            .await?
            .ok_or_else(|| Error::NotFound {
                resource: "studio",
                id: id.to_string(),
            })
    }

    pub async fn list_studios(&self, page: &PageQuery) -> Result<Vec<StudioRecord>> {
        self.store.list_studios(page).await
    }

    pub async fn update_studio(&self, id: &str, changes: StudioChanges) -> Result<StudioRecord> {
        let _one_write = self.writes.lock().await;
        let mut studio = self.get_studio(id).await?;
        if let Some(name) = changes.display_name {
            studio.display_name = name;
        }
        if let Some(status) = changes.status {
            studio.status = status;
        }
        if let Some(origins) = changes.allowed_origins {
            studio.allowed_origins = origins;
        }
        studio.update_ms = now_ms();
        self.store.update_studio(&studio).await?;
        self.write().put_studio(&studio);
        Ok(studio)
    }

    /// Whether a call from the web page at `origin` may use `studio_id`'s
    /// credentials (the City-wide origins are the caller's to check).
    pub fn studio_allows_origin(&self, studio_id: &str, origin: &str) -> bool {
        self.read()
            .studios
            .get(studio_id)
            .is_some_and(|studio| studio.allowed_origins.iter().any(|o| &**o == origin))
    }

    /// Whether some studio allows `origin` (a preflight cannot know which
    /// studio the call will name).
    pub fn some_studio_allows_origin(&self, origin: &str) -> bool {
        self.read().origins_of_any_studio.contains(origin)
    }

    pub async fn create_studio_key(
        &self,
        studio_id: &str,
        display_name: String,
    ) -> Result<(StudioKeyRecord, String)> {
        let _one_write = self.writes.lock().await;
        self.get_studio(studio_id).await?;
        let Minted { id, bearer, hash } = secret::mint(secret::STUDIO_KEY_PREFIX);
        let key = StudioKeyRecord {
            id,
            studio_id: studio_id.to_string(),
            display_name,
            secret_hash: hash,
            create_ms: now_ms(),
            revoke_ms: None,
        };
        self.store.insert_studio_key(&key).await?;
        self.write().keys.insert(key.id.clone(), key_entry(&key));
        Ok((key, bearer))
    }

    pub async fn list_studio_keys(
        &self,
        studio_id: &str,
        page: &PageQuery,
    ) -> Result<Vec<StudioKeyRecord>> {
        self.store.list_studio_keys(studio_id, page).await
    }

    pub async fn revoke_studio_key(
        &self,
        studio_id: &str,
        key_id: &str,
    ) -> Result<StudioKeyRecord> {
        let _one_write = self.writes.lock().await;
        let not_found = || Error::NotFound {
            resource: "studio key",
            id: key_id.to_string(),
        };
        let existing = self
            .store
            .get_studio_key(key_id)
            .await?
            .ok_or_else(not_found)?;
        if existing.studio_id != studio_id {
            return Err(not_found());
        }
        let key = self.store.revoke_studio_key(key_id, now_ms()).await?;
        self.write().keys.insert(key.id.clone(), key_entry(&key));
        Ok(key)
    }

    pub async fn issue_user_token(
        &self,
        studio_id: &str,
        user_id: String,
        ttl: Option<Duration>,
    ) -> Result<(UserTokenRecord, String)> {
        let _one_write = self.writes.lock().await;
        validate_user_id(&user_id)?;
        self.get_studio(studio_id).await?;
        let Minted { id, bearer, hash } = secret::mint(secret::USER_TOKEN_PREFIX);
        let now = now_ms();
        let token = UserTokenRecord {
            id,
            studio_id: studio_id.to_string(),
            user_id,
            secret_hash: hash,
            create_ms: now,
            expire_ms: ttl.map(|ttl| now.saturating_add(ttl_millis(ttl))),
            revoke_ms: None,
        };
        self.store.insert_user_token(&token).await?;
        self.write()
            .tokens
            .insert(token.id.clone(), token_entry(&token));
        Ok((token, bearer))
    }

    pub async fn list_user_tokens(
        &self,
        studio_id: &str,
        user_id: Option<&str>,
        page: &PageQuery,
    ) -> Result<Vec<UserTokenRecord>> {
        self.store.list_user_tokens(studio_id, user_id, page).await
    }

    pub async fn revoke_user_token(
        &self,
        studio_id: &str,
        token_id: &str,
    ) -> Result<UserTokenRecord> {
        let _one_write = self.writes.lock().await;
        let not_found = || Error::NotFound {
            resource: "user token",
            id: token_id.to_string(),
        };
        let existing = self
            .store
            .get_user_token(token_id)
            .await?
            .ok_or_else(not_found)?;
        if existing.studio_id != studio_id {
            return Err(not_found());
        }
        let token = self.store.revoke_user_token(token_id, now_ms()).await?;
        self.write()
            .tokens
            .insert(token.id.clone(), token_entry(&token));
        Ok(token)
    }
}

fn ensure_active(maps: &Maps, studio_id: &str) -> Result<()> {
    match maps.studios.get(studio_id).map(|studio| studio.status) {
        Some(StudioStatus::Active) => Ok(()),
        Some(StudioStatus::Suspended) => Err(Error::StudioSuspended {
            studio_id: studio_id.to_string(),
        }),
        None => Err(Error::StudioNotFound {
            studio_id: studio_id.to_string(),
        }),
    }
}

fn key_entry(key: &StudioKeyRecord) -> KeyEntry {
    KeyEntry {
        studio_id: key.studio_id.as_str().into(),
        hash: key.secret_hash,
        revoked: key.revoke_ms.is_some(),
    }
}

fn token_entry(token: &UserTokenRecord) -> TokenEntry {
    TokenEntry {
        studio_id: token.studio_id.as_str().into(),
        user_id: token.user_id.as_str().into(),
        hash: token.secret_hash,
        expire_ms: token.expire_ms,
        revoked: token.revoke_ms.is_some(),
    }
}

/// A TTL in whole milliseconds, rounded up so a tiny TTL is not already over.
fn ttl_millis(ttl: Duration) -> Millis {
    Millis::try_from(ttl.as_nanos().div_ceil(1_000_000)).unwrap_or(Millis::MAX)
}

fn validate_user_id(user_id: &str) -> Result<()> {
    if user_id.is_empty() || user_id.len() > 128 || user_id.chars().any(char::is_control) {
        return Err(Error::invalid("user_id", "1 to 128 printable characters"));
    }
    Ok(())
}
