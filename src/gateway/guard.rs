//! The call guard: from the moment a call holds a reservation until its one
//! usage row is handed to the writer. However the call ends — answered,
//! failed, or dropped at any await because the client hung up or City is
//! shutting down — the reservation is settled and exactly one row is written.
//! That holds by construction: the only ways out are `finish`, `dismiss`
//! (a before_call hook denied the call: no row, nothing held) and `Drop`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::call::{CallContext, Consumption};
use crate::catalog::CatalogModel;
use crate::domain::UsageRow;
use crate::error::{Error, Result};
use crate::metrics::{CallRecord, Metrics, Open};
use crate::quota::{Amount, Reservation};
use crate::usage::{self, Committed, RowKind, UsageWriter};

/// Usage-row metadata key saying where the token counts came from when the
/// upstream did not report its own.
pub const USAGE_SOURCE_KEY: &str = "downcity.usage_source";
/// The prompt estimate and the pieces relayed before a stream ended.
pub const USAGE_SOURCE_RELAYED: &str = "relayed_so_far";
/// The prompt estimate only: the call ended before any answer came back.
pub const USAGE_SOURCE_ESTIMATE: &str = "prompt_estimate";

/// The reserved estimate: the counts of a row written at admission, kept
/// if its call never settles it (City crashed, or its replica died).
pub const USAGE_SOURCE_RESERVED: &str = "reserved_estimate";
/// The error reason an open row carries until its call settles it.
pub const REPLICA_LOST: &str = "REPLICA_LOST";

/// How a call ended, as its row records it.
pub(super) struct CallEnd<'a> {
    pub used: Consumption,
    pub error: Option<&'a Error>,
    /// Set when the counts are City's own (see `USAGE_SOURCE_KEY`).
    pub usage_source: Option<&'static str>,
}

pub(super) struct CallGuard {
    ctx: CallContext,
    /// The model the row names: the first of the chain until an attempt answers.
    model: Arc<CatalogModel>,
    metadata: BTreeMap<String, String>,
    prompt_estimate: u64,
    /// Stream pieces relayed so far, and when the first one left.
    relayed: u64,
    ttft_us: Option<i64>,
    reservation: Option<Reservation>,
    /// The final row while `finish` waits for room in the writer's queue.
    row: Option<UsageRow>,
    /// An open row was handed to the writer: the final row replaces it.
    opened: bool,
    usage: UsageWriter,
    metrics: Arc<Metrics>,
    /// Counts the call in flight until the guard goes.
    _in_flight: Open,
    /// The call's span, which the call's end is recorded on.
    span: tracing::Span,
}

impl CallGuard {
    pub(super) fn new(
        ctx: CallContext,
        model: Arc<CatalogModel>,
        metadata: BTreeMap<String, String>,
        prompt_estimate: u64,
        reservation: Reservation,
        usage: UsageWriter,
        metrics: Arc<Metrics>,
    ) -> Self {
        CallGuard {
            _in_flight: metrics.call_admitted(),
            metrics,
            span: tracing::Span::current(),
            ctx,
            model,
            metadata,
            prompt_estimate,
            relayed: 0,
            ttft_us: None,
            reservation: Some(reservation),
            row: None,
            opened: false,
            usage,
        }
    }

    pub(super) fn ctx(&self) -> &CallContext {
        &self.ctx
    }

    pub(super) fn model(&self) -> &Arc<CatalogModel> {
        &self.model
    }

    /// The call's span, which its end is recorded on.
    pub(super) fn span(&self) -> &tracing::Span {
        &self.span
    }

    pub(super) fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    pub(super) fn metadata(&self) -> &BTreeMap<String, String> {
        &self.metadata
    }

    pub(super) fn prompt_estimate(&self) -> u64 {
        self.prompt_estimate
    }

    pub(super) fn relayed(&self) -> u64 {
        self.relayed
    }

    pub(super) fn add_metadata(&mut self, extra: BTreeMap<String, String>) {
        self.metadata.extend(extra);
    }

    /// The model that served (or last tried) the call.
    pub(super) fn served_by(&mut self, model: Arc<CatalogModel>) {
        self.model = model;
    }

    /// Counts one relayed stream piece.
    pub(super) fn relayed_piece(&mut self) {
        self.ttft_us
            .get_or_insert_with(|| self.ctx.started.elapsed().as_micros() as i64);
        self.relayed += 1;
    }

    /// What a call used, priced at the model that served it.
    pub(super) fn consumption(&self, input: u64, output: u64, images: u64) -> Consumption {
        consumption(&self.model, input, output, images)
    }

    /// A before_call hook refused the call: it costs nothing and leaves no row.
    pub(super) async fn dismiss(mut self) {
        if let Some(reservation) = self.reservation.take() {
            reservation.settle(Amount::default()).await;
        }
    }

    /// Hands the call's row to the writer at admission, open, with the
    /// reserved counts; once `Committed` resolves, a crash anywhere still
    /// leaves the call a row (settled as estimated by a sweeper). The caller
    /// waits for it before the first piece reaches the client, not before
    /// calling the upstream: the commit and the upstream's first token overlap.
    pub(super) async fn open_row(&mut self, reserved: Consumption) -> Result<Committed> {
        let end = CallEnd {
            used: reserved,
            error: None,
            usage_source: Some(USAGE_SOURCE_RESERVED),
        };
        let mut row = self.row_for(&end);
        row.status_code = tonic::Code::Unavailable as i32;
        row.error_reason = REPLICA_LOST.to_string();
        row.latency_us = 0;
        let slot = self.usage.slot().await?;
        // Set before the hand-over: once sent, the final row must replace it.
        self.opened = true;
        Ok(slot.send_as(row, RowKind::Opened, None))
    }

    /// How the final row reaches the store.
    fn final_kind(&self) -> RowKind {
        if self.opened {
            RowKind::Settled
        } else {
            RowKind::Final
        }
    }

    /// Settles the reservation and hands the row to the writer; resolves once
    /// the row is committed (durable usage), so the answer may leave.
    /// The reservation is settled once the row is committed: a replica that
    /// dies in between leaves a hold that the sweeper counts from the row,
    /// so the shared counters never count a call that has no row.
    pub(super) async fn finish(mut self, end: CallEnd<'_>) -> Result<()> {
        let row = self.row_for(&end);
        self.ended(&row);
        self.row = Some(row);
        let slot = self.usage.slot().await?;
        let row = self.row.take().expect("the row is set above");
        let used = quota_amount(end.used);
        // Dropped while waiting (the client hung up), it still settles to `used`.
        let reservation = self.reservation.take().map(|r| r.settling_to(used));
        let committed = slot
            .send_as(row, self.final_kind(), self.traceparent())
            .wait()
            .await;
        if let Some(reservation) = reservation {
            reservation.settle(used).await;
        }
        committed
    }

    fn row_for(&self, end: &CallEnd<'_>) -> UsageRow {
        let mut metadata = self.metadata.clone();
        if let Some(source) = end.usage_source {
            metadata.insert(USAGE_SOURCE_KEY.into(), source.into());
        }
        let record = &self.model.record;
        UsageRow {
            request_id: self.ctx.request_id.0.to_string(),
            studio_id: self.ctx.caller.studio_id.to_string(),
            user_id: self.ctx.caller.user_id.to_string(),
            model_id: record.id.clone(),
            provider_id: record.provider_id.clone(),
            pathway: record.pathway.as_str().to_string(),
            input_tokens: end.used.input_tokens as i64,
            output_tokens: end.used.output_tokens as i64,
            images: end.used.images as i64,
            cost_micros: end.used.cost_micros,
            status_code: end.error.map_or(0, |e| e.code() as i32),
            error_reason: end
                .error
                .map_or_else(String::new, |e| e.reason().to_string()),
            latency_us: self.ctx.started.elapsed().as_micros() as i64,
            ttft_us: self.ttft_us,
            create_ms: self.ctx.create_ms,
            metadata,
        }
    }

    /// The call's trace context, for its after_call deliveries.
    fn traceparent(&self) -> Option<String> {
        crate::telemetry::propagate::traceparent(&self.span)
    }

    /// Records the call's end on its span and in the metrics, from its row.
    fn ended(&self, row: &UsageRow) {
        let span = &self.span;
        span.record("gen_ai.usage.input_tokens", row.input_tokens);
        span.record("gen_ai.usage.output_tokens", row.output_tokens);
        span.record("rpc.grpc.status_code", row.status_code);
        if row.status_code != 0 {
            span.record("otel.status_code", "ERROR");
        }
        if !self.metrics.is_enabled() {
            return;
        }
        let micros = |us: i64| Duration::from_micros(us.max(0) as u64);
        self.metrics.call_ended(&CallRecord {
            studio: &row.studio_id,
            model: &row.model_id,
            pathway: self.model.record.pathway.as_str(),
            code: tonic::Code::from_i32(row.status_code),
            latency: micros(row.latency_us),
            ttft: row.ttft_us.map(micros),
            input_tokens: row.input_tokens as u64,
            output_tokens: row.output_tokens as u64,
            cost_micros: row.cost_micros,
        });
    }

    /// The end of a call that nobody finished: the client hung up or City
    /// stopped it. It used the prompt estimate and what was relayed.
    fn cancelled_end(&self) -> (Consumption, &'static str) {
        let used = self.consumption(self.prompt_estimate, self.relayed, 0);
        let source = if self.ttft_us.is_some() {
            USAGE_SOURCE_RELAYED
        } else {
            USAGE_SOURCE_ESTIMATE
        };
        (used, source)
    }
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        let row = match (self.row.take(), &self.reservation) {
            (Some(row), _) => row,
            (None, Some(_)) => {
                let (used, source) = self.cancelled_end();
                let error = Error::Cancelled;
                let end = CallEnd {
                    used,
                    error: Some(&error),
                    usage_source: Some(source),
                };
                let row = self.row_for(&end);
                self.ended(&row);
                row
            }
            (None, None) => return,
        };
        let amount = quota_amount(row_consumption(&row));
        let reservation = self.reservation.take();
        let usage = self.usage.clone();
        let kind = self.final_kind();
        let traceparent = self.traceparent();
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::error!(request_id = %row.request_id, "no runtime to record a dropped call");
            return;
        };
        // Drop cannot wait; the settle and the row go on without the caller.
        runtime.spawn(async move {
            if let Err(err) = usage.record_as(row, kind, traceparent).await {
                tracing::error!(%err, "could not record a dropped call");
            }
            if let Some(reservation) = reservation {
                reservation.settle(amount).await;
            }
        });
    }
}

/// What a row says was used.
fn row_consumption(row: &UsageRow) -> Consumption {
    Consumption {
        input_tokens: row.input_tokens as u64,
        output_tokens: row.output_tokens as u64,
        images: row.images as u64,
        cost_micros: row.cost_micros,
    }
}

/// An upstream's counts are believed up to this much per call, so a broken
/// one's u64::MAX can neither wrap into a negative row nor overflow a sum.
const MAX_COUNT_PER_CALL: u64 = u32::MAX as u64;

/// What a call used, from its counts (each capped at `MAX_COUNT_PER_CALL`).
pub(super) fn consumption(
    model: &CatalogModel,
    input_tokens: u64,
    output_tokens: u64,
    images: u64,
) -> Consumption {
    let [input_tokens, output_tokens, images] =
        [input_tokens, output_tokens, images].map(|count| count.min(MAX_COUNT_PER_CALL));
    Consumption {
        input_tokens,
        output_tokens,
        images,
        cost_micros: usage::cost_micros(&model.record, input_tokens, output_tokens, images),
    }
}

/// What a finished call used, as the ledger counts it.
pub(super) fn quota_amount(used: Consumption) -> Amount {
    Amount {
        requests: 1,
        tokens: i64::try_from(used.input_tokens + used.output_tokens).unwrap_or(i64::MAX),
        cost_micros: used.cost_micros,
    }
}
