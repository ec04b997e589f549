//! Admission, the prelude every AI call shares: resolve the model (explicit
//! or the pathway's default) and check the studio may use it, validate the
//! request against it, build the fallback chain, reserve the worst case, and
//! ask the studio's before_call hooks. What comes out is a `CallGuard`
//! holding the reservation, and the chain to try.

use std::sync::Arc;
use std::time::Instant;

use super::Gateway;
use super::call::{CallContext, Consumption, ImageInput, TextInput};
use super::guard::CallGuard;
use crate::catalog::{Catalog, CatalogModel};
use crate::domain::Pathway;
use crate::error::{Error, Result};
use crate::hooks::BeforeCall;
use crate::providers::{self, ChatMessage};
use crate::quota::Amount;
use crate::usage::{self, Committed};

/// What is being asked, as admission sees it.
pub(super) enum Ask<'a> {
    Text { input: &'a TextInput, stream: bool },
    Image(&'a ImageInput),
}

/// An admitted call: its guard, the models to try in order, (text) the
/// max_tokens checked against the first model, and (stream) its open row
/// on its way to the store.
pub(super) struct Admitted {
    pub guard: CallGuard,
    pub chain: Vec<Arc<CatalogModel>>,
    pub max_tokens: u32,
    pub open_row: Option<Committed>,
}

impl Ask<'_> {
    fn pathway(&self) -> Pathway {
        match self {
            Ask::Text { .. } => Pathway::Text,
            Ask::Image(_) => Pathway::Image,
        }
    }

    fn model(&self) -> &str {
        match self {
            Ask::Text { input, .. } => &input.model,
            Ask::Image(input) => &input.model,
        }
    }

    fn metadata(&self) -> &std::collections::BTreeMap<String, String> {
        match self {
            Ask::Text { input, .. } => &input.metadata,
            Ask::Image(input) => &input.metadata,
        }
    }

    fn prompt_estimate(&self) -> u64 {
        match self {
            Ask::Text { input, .. } => providers::estimate_prompt_tokens(&input.messages),
            Ask::Image(_) => 0,
        }
    }

    /// Validates against the first model; returns the max_tokens to use.
    fn check(&self, model: &CatalogModel, prompt_estimate: u64) -> Result<u32> {
        match self {
            Ask::Text { input, .. } => check_text_input(model, input, prompt_estimate),
            Ask::Image(_) => Ok(0),
        }
    }

    /// The worst case: priced at the dearest model of the chain.
    fn claim(&self, chain: &[Arc<CatalogModel>], max_tokens: u32, prompt_estimate: u64) -> Amount {
        let (prompt, output, images) = match self {
            Ask::Text { .. } => (prompt_estimate, u64::from(max_tokens), 0),
            Ask::Image(input) => (0, 0, u64::from(input.count)),
        };
        let cost = chain
            .iter()
            .map(|m| usage::cost_micros(&m.record, prompt, output, images))
            .max()
            .unwrap_or_default();
        Amount {
            requests: 1,
            tokens: i64::try_from(prompt + output).unwrap_or(i64::MAX),
            cost_micros: cost,
        }
    }

    /// The prompt as a before_call hook sees it.
    fn prompt_json(&self) -> serde_json::Value {
        match self {
            Ask::Text { input, .. } => text_prompt(&input.messages),
            Ask::Image(input) => serde_json::Value::from(input.prompt.as_str()),
        }
    }

    fn stream(&self) -> bool {
        matches!(self, Ask::Text { stream: true, .. })
    }
}

impl Gateway {
    /// Admits a call, or refuses it with nothing held and no row (unknown
    /// model, invalid input, over quota, denied by a hook).
    pub(super) async fn admit(&self, ctx: CallContext, ask: Ask<'_>) -> Result<Admitted> {
        let studio_id = ctx.caller.studio_id.clone();
        let admitted = self.try_admit(ctx, &ask).await;
        if let Err(err) = &admitted {
            self.refused(&studio_id, ask.model(), ask.pathway(), err);
        }
        admitted
    }

    async fn try_admit(&self, ctx: CallContext, ask: &Ask<'_>) -> Result<Admitted> {
        let catalog = self.catalog.current();
        let first = self.resolve(&catalog, &ctx, ask.model(), ask.pathway())?;
        let span = tracing::Span::current();
        span.record("model", first.record.id.as_str());
        span.record("gen_ai.request.model", first.record.id.as_str());
        span.record("gen_ai.system", first.provider.system());
        // One pass over the prompt serves the check, the claim and the guard.
        let prompt_estimate = ask.prompt_estimate();
        let max_tokens = ask.check(&first, prompt_estimate)?;
        let chain = self.chain(&catalog, &ctx, &first);
        let claim = ask.claim(&chain, max_tokens, prompt_estimate);
        let call_id = ctx.request_id.0.to_string();
        let call = (call_id.as_str(), ctx.create_ms);
        let reservation = self.quotas.reserve(&ctx.caller, call, claim).await?;
        let mut guard = CallGuard::new(
            ctx,
            first,
            ask.metadata().clone(),
            prompt_estimate,
            reservation,
            self.usage.clone(),
            self.metrics.clone(),
        );
        if self.hooks.has_before_call(&guard.ctx().caller.studio_id) {
            let call = before_call(&guard, ask, claim);
            let asked = Instant::now();
            let answer = self.hooks.before_call(&call).await;
            self.metrics.before_call_took(asked.elapsed());
            match answer {
                Ok(extra) => guard.add_metadata(extra),
                Err(err) => {
                    guard.dismiss().await;
                    return Err(err);
                }
            }
        }
        let mut open_row = None;
        if ask.stream() {
            // A stream's row exists from admission on (see `open_row`).
            let reserved = Consumption {
                input_tokens: prompt_estimate,
                output_tokens: u64::from(max_tokens),
                images: 0,
                cost_micros: claim.cost_micros,
            };
            match guard.open_row(reserved).await {
                Ok(committed) => open_row = Some(committed),
                Err(err) => {
                    guard.dismiss().await;
                    return Err(err);
                }
            }
        }
        Ok(Admitted {
            guard,
            chain,
            max_tokens,
            open_row,
        })
    }

    /// The model a call asked for, if the studio may use it.
    fn resolve(
        &self,
        catalog: &Catalog,
        ctx: &CallContext,
        requested: &str,
        pathway: Pathway,
    ) -> Result<Arc<CatalogModel>> {
        let model = catalog.resolve(requested, pathway)?;
        if !self
            .quotas
            .model_allowed(&ctx.caller.studio_id, &model.record.id)
        {
            return Err(Error::ModelNotFound {
                model_id: model.record.id.clone(),
            });
        }
        Ok(model)
    }

    /// The fallback chain of `first` that this studio may use.
    fn chain(
        &self,
        catalog: &Catalog,
        ctx: &CallContext,
        first: &Arc<CatalogModel>,
    ) -> Vec<Arc<CatalogModel>> {
        // `resolve` already checked the first model.
        let fallbacks = catalog.fallbacks(first).filter(|m| {
            self.quotas
                .model_allowed(&ctx.caller.studio_id, &m.record.id)
        });
        std::iter::once(first.clone()).chain(fallbacks).collect()
    }
}

/// What a before_call hook is asked: the call, its claim, its prompt.
fn before_call(guard: &CallGuard, ask: &Ask<'_>, claim: Amount) -> BeforeCall {
    let ctx = guard.ctx();
    let model = &guard.model().record;
    BeforeCall {
        request_id: ctx.request_id.0.to_string(),
        studio_id: ctx.caller.studio_id.to_string(),
        user_id: ctx.caller.user_id.to_string(),
        model: model.id.clone(),
        pathway: model.pathway.as_str(),
        stream: ask.stream(),
        estimated_tokens: claim.tokens,
        estimated_cost_micros: claim.cost_micros,
        metadata: guard.metadata().clone(),
        prompt: ask.prompt_json(),
    }
}

/// The prompt of a text call as a before_call hook sees it.
fn text_prompt(messages: &[ChatMessage]) -> serde_json::Value {
    let role = |role: providers::Role| match role {
        providers::Role::System => "system",
        providers::Role::User => "user",
        providers::Role::Assistant => "assistant",
    };
    messages
        .iter()
        .map(|m| serde_json::json!({"role": role(m.role), "content": m.content}))
        .collect()
}

/// Checks a text request against its model; returns the max_tokens to use.
fn check_text_input(model: &CatalogModel, input: &TextInput, estimate: u64) -> Result<u32> {
    let limit = model.record.max_output_tokens.max(1) as u32;
    let max_tokens = input.max_tokens.unwrap_or(limit);
    if max_tokens > limit {
        return Err(Error::invalid(
            "max_tokens",
            format!("at most {limit} for model `{}`", model.record.id),
        ));
    }
    let prompt_limit = model.record.max_input_tokens.max(1) as u64;
    if estimate > prompt_limit {
        return Err(Error::invalid(
            "messages",
            format!(
                "the prompt is about {estimate} tokens; model `{}` takes at most {prompt_limit}",
                model.record.id
            ),
        ));
    }
    Ok(max_tokens)
}
