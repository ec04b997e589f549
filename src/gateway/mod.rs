//! One AI call, in order: admission (resolve the model, validate, reserve,
//! before_call), the provider call with fallback, then exactly one usage row
//! before the answer leaves.
//!
//! Auth has already happened (the caller is in hand); the doors in `api`
//! only convert between their wire format and these domain types.

mod admit;
mod call;
mod guard;
mod relay;

use std::future::Future;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tracing::Instrument;

pub use call::{
    CallContext, Consumption, ImageAnswer, ImageInput, StreamChunk, TextAnswer, TextInput,
};

use admit::{Admitted, Ask};
use guard::{CallEnd, CallGuard};
pub use relay::{Relay, StartedStream};

use crate::catalog::{CatalogCache, CatalogModel};
use crate::domain::Pathway;
use crate::error::{Error, ProviderFailure, Result};
use crate::hooks::Hooks;
use crate::metrics::Metrics;
use crate::providers::{ImageCall, TextCall};
use crate::quota::Quotas;
use crate::telemetry;
use crate::usage::UsageWriter;

pub struct Gateway {
    catalog: Arc<CatalogCache>,
    quotas: Arc<Quotas>,
    usage: UsageWriter,
    hooks: Arc<Hooks>,
    metrics: Arc<Metrics>,
    /// Cancelled when the shutdown grace is over: calls still running stop,
    /// and their guards record them.
    stopping: CancellationToken,
}

impl Gateway {
    pub fn new(
        catalog: Arc<CatalogCache>,
        quotas: Arc<Quotas>,
        usage: UsageWriter,
        hooks: Arc<Hooks>,
        stopping: CancellationToken,
    ) -> Self {
        Gateway {
            catalog,
            quotas,
            usage,
            hooks,
            metrics: Metrics::disabled(),
            stopping,
        }
    }

    /// Records calls into `metrics`.
    pub fn with_metrics(self, metrics: Arc<Metrics>) -> Self {
        Gateway { metrics, ..self }
    }

    /// Whether calls are counted (metrics are on).
    pub fn counts_calls(&self) -> bool {
        self.metrics.is_enabled()
    }

    /// Counts a call that passed auth and was refused before admission
    /// (the doors' own checks of the request).
    pub fn refused(&self, studio_id: &str, model: &str, pathway: Pathway, err: &Error) {
        if self.metrics.is_enabled() {
            let model = self.model_label(model, pathway);
            self.metrics
                .call_refused(studio_id, &model, pathway.as_str(), err);
        }
    }

    /// The id a call's model resolves to, or `unknown`: a name the catalog
    /// does not know never becomes a label.
    fn model_label(&self, requested: &str, pathway: Pathway) -> String {
        self.catalog
            .current()
            .resolve(requested, pathway)
            .map_or_else(|_| "unknown".to_string(), |m| m.record.id.clone())
    }

    /// Runs a call until it ends or City stops it. Stopped, the call's future
    /// is dropped, so its guard settles it and records its row.
    async fn until_stopped<T>(&self, call: impl Future<Output = Result<T>>) -> Result<T> {
        tokio::select! {
            result = call => result,
            () = self.stopping.cancelled() => Err(Error::ShuttingDown),
        }
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

    pub async fn text(&self, ctx: CallContext, input: TextInput) -> Result<TextAnswer> {
        self.until_stopped(self.run_text(ctx, input)).await
    }

    pub async fn image(&self, ctx: CallContext, input: ImageInput) -> Result<ImageAnswer> {
        self.until_stopped(self.run_image(ctx, input)).await
    }

    /// Starts a stream: errors before the first chunk come back as an error
    /// here (with their usage row written); afterwards the returned relay owns
    /// the call's guard and writes its row when it ends, however it ends.
    pub async fn stream_text(&self, ctx: CallContext, input: TextInput) -> Result<StartedStream> {
        self.until_stopped(self.start_stream(ctx, input)).await
    }

    async fn run_text(&self, ctx: CallContext, input: TextInput) -> Result<TextAnswer> {
        let ask = Ask::Text {
            input: &input,
            stream: false,
        };
        let Admitted {
            mut guard,
            chain,
            max_tokens,
            ..
        } = self.admit(ctx, ask).await?;
        let request = &input;
        let (model, result) = with_fallback(&self.metrics, chain, |model| async move {
            model
                .provider
                .text(text_call(&model, request, max_tokens))
                .await
        })
        .await;
        guard.served_by(model.clone());
        let result = result.map(|out| TextAnswer {
            usage: guard.consumption(out.input_tokens, out.output_tokens, 0),
            text: out.text,
            model_id: model.record.id.clone(),
            finish: out.finish,
        });
        settle(guard, result, |answer| answer.usage).await
    }

    async fn run_image(&self, ctx: CallContext, input: ImageInput) -> Result<ImageAnswer> {
        let Admitted {
            mut guard, chain, ..
        } = self.admit(ctx, Ask::Image(&input)).await?;
        let request = &input;
        let (model, result) = with_fallback(&self.metrics, chain, |model| async move {
            let call = ImageCall {
                upstream_model: &model.record.upstream_model,
                prompt: &request.prompt,
                count: request.count,
                options: &model.record.options,
            };
            model.provider.image(call).await
        })
        .await;
        guard.served_by(model.clone());
        let result = result.map(|out| ImageAnswer {
            usage: guard.consumption(0, 0, out.images.len() as u64),
            images: out.images,
            model_id: model.record.id.clone(),
        });
        settle(guard, result, |answer| answer.usage).await
    }

    async fn start_stream(&self, ctx: CallContext, input: TextInput) -> Result<StartedStream> {
        let ask = Ask::Text {
            input: &input,
            stream: true,
        };
        let Admitted {
            mut guard,
            chain,
            max_tokens,
            open_row,
        } = self.admit(ctx, ask).await?;
        let request = &input;
        let call = with_fallback(&self.metrics, chain, |model| async move {
            model
                .provider
                .stream_text(text_call(&model, request, max_tokens))
                .await
        });
        // The open row commits while the upstream starts; nothing reaches
        // the client before it is durable.
        let open_row = async {
            match open_row {
                Some(committed) => committed.wait().await,
                None => Ok(()),
            }
        };
        let ((model, result), opened) = tokio::join!(call, open_row);
        if let Err(err) = opened {
            guard.dismiss().await;
            return Err(err);
        }
        guard.served_by(model.clone());
        let upstream = match result {
            Ok(upstream) => upstream,
            Err(err) => {
                let end = CallEnd {
                    used: Consumption::default(),
                    error: Some(&err),
                    usage_source: None,
                };
                guard.finish(end).await?;
                return Err(err);
            }
        };
        Ok(StartedStream {
            model_id: model.record.id.clone(),
            chunks: Relay::new(guard, upstream, self.stopping.clone()),
        })
    }
}

/// Settles a unary call and records its row, then hands back its outcome:
/// the answer leaves only once its row is committed.
async fn settle<T>(
    guard: CallGuard,
    result: Result<T>,
    used: impl FnOnce(&T) -> Consumption,
) -> Result<T> {
    let (used, error) = match &result {
        Ok(answer) => (used(answer), None),
        Err(err) => (Consumption::default(), Some(err)),
    };
    let end = CallEnd {
        used,
        error,
        usage_source: None,
    };
    guard.finish(end).await?;
    result
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
    metrics: &Metrics,
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
    let mut result = attempt_in_span(&mut attempt, &current).await;
    while let Err(err) = &result {
        metrics.provider_failed(err);
        if !worth_falling_back(err) {
            break;
        }
        let Some(next) = models.next() else { break };
        tracing::info!(from = %current.record.id, to = %next.record.id, "falling back");
        current = next;
        result = attempt_in_span(&mut attempt, &current).await;
    }
    (current, result)
}

/// One upstream attempt, in its own span.
async fn attempt_in_span<T, F, Fut>(attempt: &mut F, model: &Arc<CatalogModel>) -> Result<T>
where
    F: FnMut(Arc<CatalogModel>) -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let record = &model.record;
    let span = telemetry::upstream_span(
        model.provider.system(),
        &record.provider_id,
        &record.upstream_model,
    );
    let result = attempt(model.clone()).instrument(span.clone()).await;
    if result.is_err() {
        span.record("otel.status_code", "ERROR");
    }
    result
}
