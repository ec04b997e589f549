//! The model catalog: stable model ids, the provider serving each, and the
//! default model of each pathway. Held in memory as an immutable `Catalog`
//! swapped whole on every admin write, so a call reads it without waiting.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::domain::{ModelRecord, Pathway, ProviderRecord, check_catalog_id, now_ms};
use crate::error::{Error, Result, Violations};
use crate::keys::{ApiKey, MasterKey};
use crate::providers::{self, Provider};
use crate::store::{PageQuery, Store};

/// What an UpsertProvider does to the stored API key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyChange {
    Keep,
    Clear,
    Set(ApiKey),
}

/// A model ready to serve: its record and the provider client behind it.
pub struct CatalogModel {
    pub record: ModelRecord,
    pub provider: Arc<dyn Provider>,
    pub is_default: bool,
}

/// One immutable view of the catalog.
#[derive(Default)]
pub struct Catalog {
    models: HashMap<String, Arc<CatalogModel>>,
    providers: HashMap<String, (ProviderRecord, Arc<dyn Provider>)>,
}

impl Catalog {
    fn build(
        providers: Vec<ProviderRecord>,
        models: Vec<ModelRecord>,
        defaults: &HashMap<Pathway, String>,
        previous: &Catalog,
        master_key: Option<&MasterKey>,
    ) -> Catalog {
        let providers: HashMap<_, _> = providers
            .into_iter()
            .map(|record| {
                // Keep the client (and its connection pool) of an unchanged provider.
                let client = match previous.providers.get(&record.id) {
                    Some((old, client)) if *old == record => client.clone(),
                    _ => providers::build(&record, open_key(&record, master_key)),
                };
                (record.id.clone(), (record, client))
            })
            .collect();
        let models = models
            .into_iter()
            .filter_map(|record| {
                let (_, provider) = providers.get(&record.provider_id)?;
                let model = CatalogModel {
                    is_default: defaults.get(&record.pathway) == Some(&record.id),
                    provider: provider.clone(),
                    record,
                };
                Some((model.record.id.clone(), Arc::new(model)))
            })
            .collect();
        Catalog { models, providers }
    }

    /// The model a call asked for (empty: the pathway default). It must exist,
    /// be enabled and serve `pathway`.
    pub fn resolve(&self, requested: &str, pathway: Pathway) -> Result<Arc<CatalogModel>> {
        let model = if requested.is_empty() {
            self.models
                .values()
                .find(|m| m.is_default && m.record.pathway == pathway)
                .ok_or(Error::NoDefaultModel {
                    pathway: pathway.as_str(),
                })?
        } else {
            self.models
                .get(requested)
                .ok_or_else(|| Error::ModelNotFound {
                    model_id: requested.to_string(),
                })?
        };
        if !model.record.enabled {
            return Err(Error::ModelDisabled {
                model_id: model.record.id.clone(),
            });
        }
        if model.record.pathway != pathway {
            return Err(Error::invalid(
                "model",
                format!(
                    "model `{}` serves the {} pathway, not {}",
                    model.record.id,
                    model.record.pathway.as_str(),
                    pathway.as_str()
                ),
            ));
        }
        Ok(model.clone())
    }

    /// The enabled models of a pathway's fallback list, in order.
    pub fn fallbacks<'a>(
        &'a self,
        model: &'a CatalogModel,
    ) -> impl Iterator<Item = Arc<CatalogModel>> + 'a {
        model
            .record
            .fallback_model_ids
            .iter()
            .filter_map(|id| self.models.get(id))
            .filter(|m| m.record.enabled && m.record.pathway == model.record.pathway)
            .cloned()
    }

    /// Enabled models, optionally of one pathway, ordered by id.
    pub fn enabled_models(&self, pathway: Option<Pathway>) -> Vec<Arc<CatalogModel>> {
        let mut models: Vec<_> = self
            .models
            .values()
            .filter(|m| m.record.enabled && pathway.is_none_or(|p| m.record.pathway == p))
            .cloned()
            .collect();
        models.sort_by(|a, b| a.record.id.cmp(&b.record.id));
        models
    }

    pub fn contains(&self, model_id: &str) -> bool {
        self.models.contains_key(model_id)
    }

    pub fn is_default(&self, model_id: &str) -> bool {
        self.models.get(model_id).is_some_and(|m| m.is_default)
    }
}

/// A provider's API key in plaintext, if it has one that opens.
fn open_key(record: &ProviderRecord, master_key: Option<&MasterKey>) -> Option<ApiKey> {
    let sealed = record.api_key.as_ref()?;
    let Some(master_key) = master_key else {
        tracing::error!(provider = %record.id, "provider has an API key but City has no master key");
        return None;
    };
    match master_key.open(&record.id, sealed) {
        Ok(key) => Some(key),
        Err(err) => {
            tracing::error!(provider = %record.id, %err, "cannot open the provider's API key");
            None
        }
    }
}

/// The live catalog, written through to the store.
pub struct CatalogCache {
    store: Arc<dyn Store>,
    current: RwLock<Arc<Catalog>>,
    /// One reload at a time, so the snapshot read last is the one installed
    /// (two admin writes racing never leave the older catalog in place).
    reloading: tokio::sync::Mutex<()>,
    master_key: Option<MasterKey>,
}

impl CatalogCache {
    /// Loads the catalog; `master_key` opens (and seals) provider API keys.
    pub async fn load(store: Arc<dyn Store>, master_key: Option<MasterKey>) -> Result<Self> {
        let cache = CatalogCache {
            store,
            current: RwLock::default(),
            reloading: tokio::sync::Mutex::new(()),
            master_key,
        };
        cache.reload().await?;
        Ok(cache)
    }

    /// The catalog as of now; cheap (one Arc clone).
    pub fn current(&self) -> Arc<Catalog> {
        self.current.read().expect("catalog lock").clone()
    }

    /// Re-reads providers, models and defaults from the store.
    pub async fn reload(&self) -> Result<()> {
        let _one_at_a_time = self.reloading.lock().await;
        let snapshot = self.store.catalog_snapshot().await?;
        let previous = self.current();
        let catalog = Catalog::build(
            snapshot.providers,
            snapshot.models,
            &snapshot.defaults,
            &previous,
            self.master_key.as_ref(),
        );
        *self.current.write().expect("catalog lock") = Arc::new(catalog);
        Ok(())
    }

    /// Creates or replaces a provider and applies `key` to its API key;
    /// returns the provider as stored (with its key hint).
    pub async fn upsert_provider(
        &self,
        mut provider: ProviderRecord,
        key: KeyChange,
    ) -> Result<ProviderRecord> {
        provider.validate()?;
        let sealed = match &key {
            KeyChange::Set(key) => {
                let master_key = self.master_key.as_ref().ok_or(Error::MasterKeyMissing {
                    what: "provider API keys",
                })?;
                Some(master_key.seal(&provider.id, key))
            }
            _ => None,
        };
        provider.update_ms = now_ms();
        self.store.upsert_provider(&provider).await?;
        if key != KeyChange::Keep {
            self.store
                .set_provider_api_key(&provider.id, sealed.as_ref(), provider.update_ms)
                .await?;
        }
        self.reload().await?;
        let stored = self
            .current()
            .providers
            .get(&provider.id)
            .map(|(r, _)| r.clone());
        Ok(stored.unwrap_or(provider))
    }

    /// Whether `key` is the provider's stored API key already.
    pub fn has_api_key(&self, provider_id: &str, key: &ApiKey) -> bool {
        let catalog = self.current();
        let Some((record, _)) = catalog.providers.get(provider_id) else {
            return false;
        };
        open_key(record, self.master_key.as_ref()).is_some_and(|stored| &stored == key)
    }

    pub async fn delete_provider(&self, id: &str) -> Result<()> {
        self.store.delete_provider(id).await?;
        self.reload().await
    }

    pub async fn list_providers(&self, page: &PageQuery) -> Result<Vec<ProviderRecord>> {
        self.store.list_providers(page).await
    }

    pub async fn upsert_model(&self, mut model: ModelRecord) -> Result<ModelRecord> {
        model.validate()?;
        self.check_pathway_supported(&model)?;
        model.update_ms = now_ms();
        self.store.upsert_model(&model).await?;
        self.reload().await?;
        Ok(model)
    }

    /// Refuses a model its provider has no pathway for (an image model on
    /// `anthropic`), rather than failing each call later. An unknown
    /// provider is left to the store, which answers NOT_FOUND.
    fn check_pathway_supported(&self, model: &ModelRecord) -> Result<()> {
        let catalog = self.current();
        let Some((provider, _)) = catalog.providers.get(&model.provider_id) else {
            return Ok(());
        };
        if provider.kind.supports(model.pathway) {
            return Ok(());
        }
        Err(Error::invalid(
            "model.pathway",
            format!(
                "provider `{}` ({}) has no {} pathway",
                provider.id,
                provider.kind.as_str(),
                model.pathway.as_str()
            ),
        ))
    }

    pub async fn delete_model(&self, id: &str) -> Result<()> {
        self.store.delete_model(id).await?;
        self.reload().await
    }

    pub async fn list_models(&self, page: &PageQuery) -> Result<Vec<ModelRecord>> {
        self.store.list_models(page).await
    }

    /// Makes an enabled model of `pathway` that pathway's default.
    pub async fn set_default(&self, pathway: Pathway, model_id: &str) -> Result<Arc<CatalogModel>> {
        let mut v = Violations::default();
        check_catalog_id(&mut v, "model_id", model_id);
        v.finish(())?;
        self.current().resolve(model_id, pathway)?;
        self.store.set_default_model(pathway, model_id).await?;
        self.reload().await?;
        self.current().resolve(model_id, pathway)
    }
}
