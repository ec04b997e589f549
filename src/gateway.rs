//! One AI call, in order: resolve the model, validate against it, call the
//! provider (with fallback), record exactly one usage row, answer.
//!
//! Auth has already happened (the caller is in hand); the handlers in `api`
//! only convert between the wire and these domain types.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use futures_util::StreamExt;
use tokio::sync::mpsc;

use crate::auth::{RequestId, UserCaller};
use crate::catalog::{Catalog, CatalogCache, CatalogModel};
use crate::error::{Error, ProviderFailure, Result};
use crate::hooks::{BeforeCall, Hooks};
use crate::providers::{
    self, ChatMessage, Finish, Image, ImageCall, StreamEvent, TextCall, TextStream,
};
use crate::quota::{Amount, Quotas, Reservation};
use crate::store::{Millis, Pathway, UsageRow, now_ms};
use crate::usage::{self, UsageWriter};

/// Usage-row metadata key saying where the token counts came from when a
/// stream ended before the upstream reported its own.
pub const USAGE_SOURCE_KEY: &str = "downcity.usage_source";
/// The prompt estimate and the pieces relayed before the stream ended.
pub const USAGE_SOURCE_RELAYED: &str = "relayed_so_far";

/// Stream messages buffered between the relay and a slow client.
const STREAM_BUFFER: usize = 16;

/// Who is calling and when: everything a usage row needs besides the result.
pub struct CallContext {
    pub caller: UserCaller,
    pub request_id: RequestId,
    pub started: Instant,
    pub create_ms: Millis,
}

impl CallContext {
    pub fn new(caller: UserCaller, request_id: RequestId) -> Self {
        CallContext {
            caller,
            request_id,
            started: Instant::now(),
            create_ms: now_ms(),
        }
    }
}

/// A validated text request (Text and StreamText).
#[derive(Debug, Clone, Default)]
pub struct TextInput {
    /// Empty: the text pathway's default.
    pub model: String,
    pub messages: Vec<ChatMessage>,
    pub max_tokens: Option<u32>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub stop_sequences: Vec<String>,
    pub metadata: BTreeMap<String, String>,
}

/// A validated image request.
#[derive(Debug, Clone, Default)]
pub struct ImageInput {
    pub model: String,
    pub prompt: String,
    pub count: u32,
    pub metadata: BTreeMap<String, String>,
}

/// What a call consumed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Consumption {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub images: u64,
    pub cost_micros: i64,
}

#[derive(Debug, Clone)]
pub struct TextAnswer {
    pub text: String,
    pub model_id: String,
    pub finish: Finish,
    pub usage: Consumption,
}

#[derive(Debug, Clone)]
pub struct ImageAnswer {
    pub images: Vec<Image>,
    pub model_id: String,
    pub usage: Consumption,
}

/// One message of a relayed stream: a delta, or the end with its usage.
#[derive(Debug, Clone)]
pub enum StreamChunk {
    Delta(String),
    End { finish: Finish, usage: Consumption },
}

/// A stream that has started: the serving model and the relayed chunks.
pub struct StartedStream {
    pub model_id: String,
    pub chunks: mpsc::Receiver<Result<StreamChunk>>,
}

/// What a before_call hook is asked about: the model, the reservation's
/// claim and whether the call streams.
struct Asked<'a> {
    model: &'a CatalogModel,
    claim: Amount,
    stream: bool,
}

pub struct Gateway {
    catalog: Arc<CatalogCache>,
    quotas: Arc<Quotas>,
    usage: UsageWriter,
    hooks: Arc<Hooks>,
}

impl Gateway {
    pub fn new(
        catalog: Arc<CatalogCache>,
        quotas: Arc<Quotas>,
        usage: UsageWriter,
        hooks: Arc<Hooks>,
    ) -> Self {
        Gateway {
            catalog,
            quotas,
            usage,
            hooks,
        }
    }

    /// Runs the studio's before_call hooks (if it has any) and merges the
    /// metadata they attach. A denied or failed-closed call releases its
    /// reservation: it costs nothing and writes no usage row.
    async fn before_call(
        &self,
        ctx: &CallContext,
        call: Asked<'_>,
        metadata: &mut BTreeMap<String, String>,
        reservation: Reservation,
        prompt: impl FnOnce() -> serde_json::Value,
    ) -> Result<Reservation> {
        let Asked {
            model,
            claim,
            stream,
        } = call;
        if !self.hooks.has_before_call(&ctx.caller.studio_id) {
            return Ok(reservation);
        }
        let call = BeforeCall {
            request_id: ctx.request_id.0.to_string(),
            studio_id: ctx.caller.studio_id.to_string(),
            user_id: ctx.caller.user_id.to_string(),
            model: model.record.id.clone(),
            pathway: model.record.pathway.as_str(),
            stream,
            estimated_tokens: claim.tokens,
            estimated_cost_micros: claim.cost_micros,
            metadata: metadata.clone(),
            prompt: prompt(),
        };
        match self.hooks.before_call(&call).await {
            Ok(extra) => {
                metadata.extend(extra);
                Ok(reservation)
            }
            Err(err) => {
                reservation.settle(Amount::default()).await;
                Err(err)
            }
        }
    }

    pub fn catalog(&self) -> &CatalogCache {
        &self.catalog
    }

    /// The enabled models a studio may use, optionally of one pathway.
    pub fn visible_models(
        &self,
        studio_id: &str,
        pathway: Option<Pathway>,
    ) -> Vec<Arc<CatalogModel>> {
        let mut models = self.catalog.current().enabled_models(pathway);
        models.retain(|m| self.quotas.model_allowed(studio_id, &m.record.id));
        models
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

    pub async fn text(&self, ctx: CallContext, mut input: TextInput) -> Result<TextAnswer> {
        let catalog = self.catalog.current();
        let first = self.resolve(&catalog, &ctx, &input.model, Pathway::Text)?;
        let max_tokens = check_text_input(&first, &input)?;
        let chain = self.chain(&catalog, &ctx, &first);
        let claim = text_claim(&chain, &input, max_tokens);
        let reservation = self.quotas.reserve(&ctx.caller, claim).await?;
        let messages = &input.messages;
        let prompt = || text_prompt(messages);
        let mut metadata = input.metadata.clone();
        let reservation = self
            .before_call(
                &ctx,
                Asked {
                    model: &first,
                    claim,
                    stream: false,
                },
                &mut metadata,
                reservation,
                prompt,
            )
            .await?;
        input.metadata = metadata;
        let request = &input;
        let (model, result) = with_fallback(chain, |model| async move {
            model
                .provider
                .text(text_call(&model, request, max_tokens))
                .await
        })
        .await;
        let result = result.map(|out| {
            let usage = consumption(&model, out.input_tokens, out.output_tokens, 0);
            let answer = TextAnswer {
                text: out.text,
                model_id: model.record.id.clone(),
                finish: out.finish,
                usage,
            };
            (answer, usage)
        });
        self.settle(&ctx, &model, &input.metadata, reservation, result)
            .await
    }

    pub async fn image(&self, ctx: CallContext, mut input: ImageInput) -> Result<ImageAnswer> {
        let catalog = self.catalog.current();
        let first = self.resolve(&catalog, &ctx, &input.model, Pathway::Image)?;
        let chain = self.chain(&catalog, &ctx, &first);
        let claim = image_claim(&chain, input.count);
        let reservation = self.quotas.reserve(&ctx.caller, claim).await?;
        let prompt_text = &input.prompt;
        let prompt = || serde_json::Value::from(prompt_text.as_str());
        let mut metadata = input.metadata.clone();
        let reservation = self
            .before_call(
                &ctx,
                Asked {
                    model: &first,
                    claim,
                    stream: false,
                },
                &mut metadata,
                reservation,
                prompt,
            )
            .await?;
        input.metadata = metadata;
        let request = &input;
        let (model, result) = with_fallback(chain, |model| async move {
            let call = ImageCall {
                upstream_model: &model.record.upstream_model,
                prompt: &request.prompt,
                count: request.count,
                options: &model.record.options,
            };
            model.provider.image(call).await
        })
        .await;
        let result = result.map(|out| {
            let usage = consumption(&model, 0, 0, out.images.len() as u64);
            let answer = ImageAnswer {
                images: out.images,
                model_id: model.record.id.clone(),
                usage,
            };
            (answer, usage)
        });
        self.settle(&ctx, &model, &input.metadata, reservation, result)
            .await
    }

    /// Settles the reservation and records the usage row of a unary call, then hands back its outcome:
    /// the answer leaves only once its row is committed.
    async fn settle<T>(
        &self,
        ctx: &CallContext,
        model: &CatalogModel,
        metadata: &BTreeMap<String, String>,
        reservation: Reservation,
        result: Result<(T, Consumption)>,
    ) -> Result<T> {
        let used = result
            .as_ref()
            .map_or_else(|_| Consumption::default(), |(_, usage)| *usage);
        reservation.settle(quota_amount(used)).await;
        let (answer, row) = match result {
            Ok((answer, usage)) => (
                Ok(answer),
                usage_row(ctx, model, metadata, usage, None, None),
            ),
            Err(err) => {
                let row = usage_row(
                    ctx,
                    model,
                    metadata,
                    Consumption::default(),
                    None,
                    Some(&err),
                );
                (Err(err), row)
            }
        };
        self.usage.record(row).await?;
        answer
    }

    /// Starts a stream: errors before the first chunk come back as an error
    /// here (with their usage row written); afterwards a relay task owns the
    /// call and writes its row when it ends, however it ends.
    pub async fn stream_text(
        &self,
        ctx: CallContext,
        mut input: TextInput,
    ) -> Result<StartedStream> {
        let catalog = self.catalog.current();
        let first = self.resolve(&catalog, &ctx, &input.model, Pathway::Text)?;
        let max_tokens = check_text_input(&first, &input)?;
        let chain = self.chain(&catalog, &ctx, &first);
        let claim = text_claim(&chain, &input, max_tokens);
        let reservation = self.quotas.reserve(&ctx.caller, claim).await?;
        let messages = &input.messages;
        let prompt = || text_prompt(messages);
        let mut metadata = input.metadata.clone();
        let reservation = self
            .before_call(
                &ctx,
                Asked {
                    model: &first,
                    claim,
                    stream: true,
                },
                &mut metadata,
                reservation,
                prompt,
            )
            .await?;
        input.metadata = metadata;
        let request = &input;
        let (model, result) = with_fallback(chain, |model| async move {
            model
                .provider
                .stream_text(text_call(&model, request, max_tokens))
                .await
        })
        .await;
        let upstream = match result {
            Ok(upstream) => upstream,
            Err(err) => {
                reservation
                    .settle(quota_amount(Consumption::default()))
                    .await;
                let row = usage_row(
                    &ctx,
                    &model,
                    &input.metadata,
                    Consumption::default(),
                    None,
                    Some(&err),
                );
                self.usage.record(row).await?;
                return Err(err);
            }
        };
        let (chunks, receiver) = mpsc::channel(STREAM_BUFFER);
        let relay = Relay {
            ctx,
            model: model.clone(),
            metadata: input.metadata,
            prompt_estimate: providers::estimate_prompt_tokens(&input.messages),
            reservation,
            usage: self.usage.clone(),
            chunks,
        };
        tokio::spawn(relay.run(upstream));
        Ok(StartedStream {
            model_id: model.record.id.clone(),
            chunks: receiver,
        })
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
fn check_text_input(model: &CatalogModel, input: &TextInput) -> Result<u32> {
    let limit = model.record.max_output_tokens.max(1) as u32;
    let max_tokens = input.max_tokens.unwrap_or(limit);
    if max_tokens > limit {
        return Err(Error::invalid(
            "max_tokens",
            format!("at most {limit} for model `{}`", model.record.id),
        ));
    }
    let estimate = providers::estimate_prompt_tokens(&input.messages);
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

fn text_call<'a>(model: &'a CatalogModel, input: &'a TextInput, max_tokens: u32) -> TextCall<'a> {
    TextCall {
        upstream_model: &model.record.upstream_model,
        messages: &input.messages,
        // A fallback model may allow fewer tokens than the first one.
        max_tokens: max_tokens.min(model.record.max_output_tokens.max(1) as u32),
        temperature: input.temperature,
        top_p: input.top_p,
        stop_sequences: &input.stop_sequences,
        options: &model.record.options,
    }
}

/// Whether another model may succeed where this one failed.
fn worth_falling_back(err: &Error) -> bool {
    matches!(
        err,
        Error::Provider {
            kind: ProviderFailure::Unavailable
                | ProviderFailure::RateLimited
                | ProviderFailure::Timeout,
            ..
        }
    )
}

/// Tries the chain's models in order while the failure is one another
/// upstream may not have. Returns the model that answered last.
async fn with_fallback<T, F, Fut>(
    chain: Vec<Arc<CatalogModel>>,
    mut attempt: F,
) -> (Arc<CatalogModel>, Result<T>)
where
    F: FnMut(Arc<CatalogModel>) -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let mut models = chain.into_iter();
    let mut current = models
        .next()
        .expect("a chain starts with the requested model");
    let mut result = attempt(current.clone()).await;
    while result.as_ref().is_err_and(worth_falling_back) {
        let Some(next) = models.next() else { break };
        tracing::info!(from = %current.record.id, to = %next.record.id, "falling back");
        current = next;
        result = attempt(current.clone()).await;
    }
    (current, result)
}

/// The worst case of a text call: the prompt estimate plus max_tokens, priced
/// at the dearest model of its chain.
fn text_claim(chain: &[Arc<CatalogModel>], input: &TextInput, max_tokens: u32) -> Amount {
    let prompt = providers::estimate_prompt_tokens(&input.messages);
    let output = u64::from(max_tokens);
    let cost = chain
        .iter()
        .map(|m| usage::cost_micros(&m.record, prompt, output, 0))
        .max()
        .unwrap_or_default();
    Amount {
        requests: 1,
        tokens: i64::try_from(prompt + output).unwrap_or(i64::MAX),
        cost_micros: cost,
    }
}

/// The worst case of an image call: `count` images at the dearest model.
fn image_claim(chain: &[Arc<CatalogModel>], count: u32) -> Amount {
    let cost = chain
        .iter()
        .map(|m| usage::cost_micros(&m.record, 0, 0, u64::from(count)))
        .max()
        .unwrap_or_default();
    Amount {
        requests: 1,
        tokens: 0,
        cost_micros: cost,
    }
}

/// What a finished call used, as the ledger counts it.
fn quota_amount(used: Consumption) -> Amount {
    Amount {
        requests: 1,
        tokens: i64::try_from(used.input_tokens + used.output_tokens).unwrap_or(i64::MAX),
        cost_micros: used.cost_micros,
    }
}

fn consumption(
    model: &CatalogModel,
    input_tokens: u64,
    output_tokens: u64,
    images: u64,
) -> Consumption {
    Consumption {
        input_tokens,
        output_tokens,
        images,
        cost_micros: usage::cost_micros(&model.record, input_tokens, output_tokens, images),
    }
}

fn usage_row(
    ctx: &CallContext,
    model: &CatalogModel,
    metadata: &BTreeMap<String, String>,
    usage: Consumption,
    ttft_us: Option<i64>,
    error: Option<&Error>,
) -> UsageRow {
    UsageRow {
        request_id: ctx.request_id.0.to_string(),
        studio_id: ctx.caller.studio_id.to_string(),
        user_id: ctx.caller.user_id.to_string(),
        model_id: model.record.id.clone(),
        provider_id: model.record.provider_id.clone(),
        pathway: model.record.pathway.as_str().to_string(),
        input_tokens: usage.input_tokens as i64,
        output_tokens: usage.output_tokens as i64,
        images: usage.images as i64,
        cost_micros: usage.cost_micros,
        status_code: error.map_or(0, |e| e.code() as i32),
        error_reason: error.map_or_else(String::new, |e| e.reason().to_string()),
        latency_us: ctx.started.elapsed().as_micros() as i64,
        ttft_us,
        create_ms: ctx.create_ms,
        metadata: metadata.clone(),
    }
}

/// Relays one upstream stream to one client and records its usage row.
struct Relay {
    ctx: CallContext,
    model: Arc<CatalogModel>,
    metadata: BTreeMap<String, String>,
    prompt_estimate: u64,
    reservation: Reservation,
    usage: UsageWriter,
    chunks: mpsc::Sender<Result<StreamChunk>>,
}

/// How a relayed stream ended.
enum RelayEnd {
    Finished(Finish, Consumption),
    Failed(Error, Consumption),
}

impl Relay {
    async fn run(self, mut upstream: TextStream) {
        let mut relayed_tokens = 0u64;
        let mut ttft_us = None;
        let end = loop {
            let event = tokio::select! {
                biased;
                _ = self.chunks.closed() => break self.cut_short(Error::Cancelled, relayed_tokens),
                event = upstream.next() => event,
            };
            match event {
                Some(Ok(StreamEvent::Delta(text))) => {
                    ttft_us.get_or_insert_with(|| self.ctx.started.elapsed().as_micros() as i64);
                    relayed_tokens += 1;
                    if self
                        .chunks
                        .send(Ok(StreamChunk::Delta(text)))
                        .await
                        .is_err()
                    {
                        break self.cut_short(Error::Cancelled, relayed_tokens);
                    }
                }
                Some(Ok(StreamEvent::Finished {
                    finish,
                    input_tokens,
                    output_tokens,
                })) => {
                    break RelayEnd::Finished(
                        finish,
                        consumption(&self.model, input_tokens, output_tokens, 0),
                    );
                }
                Some(Err(err)) => break self.cut_short(err, relayed_tokens),
                None => {
                    let err = Error::Provider {
                        provider_id: self.model.record.provider_id.clone(),
                        kind: ProviderFailure::BadResponse,
                        message: "stream ended without a final event".into(),
                        retry_after: None,
                    };
                    break self.cut_short(err, relayed_tokens);
                }
            }
        };
        drop(upstream);
        self.finish(end, ttft_us).await;
    }

    /// The usage of a stream that ended early: the prompt estimate and the
    /// pieces relayed so far.
    fn cut_short(&self, err: Error, relayed_tokens: u64) -> RelayEnd {
        RelayEnd::Failed(
            err,
            consumption(&self.model, self.prompt_estimate, relayed_tokens, 0),
        )
    }

    /// Writes the row first, then tells the client: a client that saw the
    /// final usage can rely on the row being durable.
    async fn finish(self, end: RelayEnd, ttft_us: Option<i64>) {
        let used = match &end {
            RelayEnd::Finished(_, usage) | RelayEnd::Failed(_, usage) => *usage,
        };
        self.reservation.settle(quota_amount(used)).await;
        let (row, last) = match end {
            RelayEnd::Finished(finish, usage) => (
                usage_row(&self.ctx, &self.model, &self.metadata, usage, ttft_us, None),
                Ok(StreamChunk::End { finish, usage }),
            ),
            RelayEnd::Failed(err, usage) => {
                // The upstream never reported its count: say so on the row.
                let mut metadata = self.metadata.clone();
                metadata.insert(USAGE_SOURCE_KEY.into(), USAGE_SOURCE_RELAYED.into());
                let row = usage_row(
                    &self.ctx,
                    &self.model,
                    &metadata,
                    usage,
                    ttft_us,
                    Some(&err),
                );
                (row, Err(err))
            }
        };
        let last = match self.usage.record(row).await {
            Ok(()) => last,
            Err(err) => Err(err),
        };
        let _ = self.chunks.send(last).await;
    }
}
