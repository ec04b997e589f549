//! `downcity.v1.AIService`.

use std::pin::Pin;
use std::sync::Arc;

use futures_util::{Stream, StreamExt};
use tonic::{Request, Response, Status};
use tracing::{Instrument, Span};

use super::convert::{finish_reason, pathway_filter, pathway_to_proto};
use super::{request_id, status};
use crate::auth::UserCaller;
use crate::domain::Pathway;
use crate::error::Error;
use crate::gateway::{CallContext, Gateway, ImageInput, StreamChunk, TextInput};
use crate::proto::{self, ai_service_server::AiService};
use crate::telemetry;

pub use super::caps::CallCaps;

pub struct AiApi {
    gateway: Arc<Gateway>,
    caps: CallCaps,
}

impl AiApi {
    pub fn new(gateway: Arc<Gateway>) -> Self {
        AiApi {
            gateway,
            caps: CallCaps::default(),
        }
    }

    /// The operator's caps on messages and prompt bytes per call.
    pub fn with_caps(self, caps: CallCaps) -> Self {
        AiApi { caps, ..self }
    }

    /// The door's own checks of one request, before the gateway sees it.
    fn door<'a>(&'a self, ctx: &'a CallContext, model: &str, pathway: Pathway) -> Door<'a> {
        Door {
            gateway: &self.gateway,
            ctx,
            // Kept only to label a refusal, and only when calls are counted.
            model: self.gateway.counts_calls().then(|| model.to_string()),
            pathway,
        }
    }
}

struct Door<'a> {
    gateway: &'a Gateway,
    ctx: &'a CallContext,
    model: Option<String>,
    pathway: Pathway,
}

impl Door<'_> {
    /// A refusal: the call passed auth, so it is counted, then becomes a status.
    fn refuse(&self) -> impl Fn(Error) -> Status + '_ {
        move |err| {
            if let Some(model) = &self.model {
                let studio_id = &self.ctx.caller.studio_id;
                self.gateway.refused(studio_id, model, self.pathway, &err);
            }
            err.to_status(&self.ctx.request_id.0)
        }
    }
}

/// `gen_ai.operation.name` of text and image calls.
const OP_CHAT: &str = "chat";
const OP_IMAGE: &str = "generate_content";

/// The call's span, continuing the caller's trace when it sent `traceparent`.
fn call_span<T>(operation: &'static str, ctx: &CallContext, request: &Request<T>) -> Span {
    telemetry::call_span(
        operation,
        &ctx.request_id.0,
        &ctx.caller.studio_id,
        &ctx.caller.user_id,
        request.metadata().as_ref(),
    )
}

/// The caller and request id that the auth interceptor resolved.
fn context<T>(request: &Request<T>) -> Result<CallContext, Status> {
    let request_id = request_id(request);
    let caller = request
        .extensions()
        .get::<UserCaller>()
        .cloned()
        .ok_or_else(|| {
            Error::internal("no caller in request extensions").to_status(&request_id.0)
        })?;
    Ok(CallContext::new(caller, request_id))
}

type StreamTextStream =
    Pin<Box<dyn Stream<Item = Result<proto::StreamTextResponse, Status>> + Send>>;

#[tonic::async_trait]
impl AiService for AiApi {
    async fn text(
        &self,
        request: Request<proto::TextRequest>,
    ) -> Result<Response<proto::TextResponse>, Status> {
        let ctx = context(&request)?;
        let id = ctx.request_id.clone();
        let span = call_span(OP_CHAT, &ctx, &request);
        let r = request.into_inner();
        let door = self.door(&ctx, &r.model, Pathway::Text);
        self.caps.check_text(&r.messages).map_err(door.refuse())?;
        let input = TextInput::try_from(r).map_err(door.refuse())?;
        // A client that hangs up drops this future: the call's guard then
        // settles it and records its row as CANCELLED.
        let answer = self
            .gateway
            .text(ctx, input)
            .instrument(span)
            .await
            .map_err(status(&id))?;
        Ok(Response::new(proto::TextResponse {
            text: answer.text,
            model: answer.model_id,
            finish_reason: finish_reason(answer.finish) as i32,
            usage: Some(answer.usage.into()),
            request_id: id.0.to_string(),
        }))
    }

    type StreamTextStream = StreamTextStream;

    async fn stream_text(
        &self,
        request: Request<proto::StreamTextRequest>,
    ) -> Result<Response<Self::StreamTextStream>, Status> {
        let ctx = context(&request)?;
        let id = ctx.request_id.clone();
        let span = call_span(OP_CHAT, &ctx, &request);
        let r = request.into_inner();
        let door = self.door(&ctx, &r.model, Pathway::Text);
        self.caps.check_text(&r.messages).map_err(door.refuse())?;
        let input = TextInput::try_from(r).map_err(door.refuse())?;
        let started = self
            .gateway
            .stream_text(ctx, input)
            .instrument(span)
            .await
            .map_err(status(&id))?;
        let model = started.model_id;
        let request_id = id.0.to_string();
        let mut first = true;
        let messages = started.chunks.map(move |chunk| {
            let mut message = match chunk.map_err(|err| err.to_status(&request_id))? {
                StreamChunk::Delta(delta) => proto::StreamTextResponse {
                    delta,
                    ..Default::default()
                },
                StreamChunk::End {
                    finish,
                    usage: used,
                } => proto::StreamTextResponse {
                    finish_reason: finish_reason(finish) as i32,
                    usage: Some(used.into()),
                    model: model.clone(),
                    request_id: request_id.clone(),
                    ..Default::default()
                },
            };
            if std::mem::take(&mut first) {
                message.model = model.clone();
                message.request_id = request_id.clone();
            }
            Ok(message)
        });
        Ok(Response::new(Box::pin(messages)))
    }

    async fn image(
        &self,
        request: Request<proto::ImageRequest>,
    ) -> Result<Response<proto::ImageResponse>, Status> {
        let ctx = context(&request)?;
        let id = ctx.request_id.clone();
        let span = call_span(OP_IMAGE, &ctx, &request);
        let r = request.into_inner();
        let door = self.door(&ctx, &r.model, Pathway::Image);
        self.caps.check_image(&r.prompt).map_err(door.refuse())?;
        let input = ImageInput::try_from(r).map_err(door.refuse())?;
        let answer = self
            .gateway
            .image(ctx, input)
            .instrument(span)
            .await
            .map_err(status(&id))?;
        Ok(Response::new(proto::ImageResponse {
            images: answer
                .images
                .into_iter()
                .map(|image| proto::GeneratedImage {
                    data: image.data,
                    mime_type: image.mime_type,
                })
                .collect(),
            model: answer.model_id,
            usage: Some(answer.usage.into()),
            request_id: id.0.to_string(),
        }))
    }

    async fn list_models(
        &self,
        request: Request<proto::ListModelsRequest>,
    ) -> Result<Response<proto::ListModelsResponse>, Status> {
        let ctx = context(&request)?;
        let pathway = pathway_filter(request.get_ref().pathway).map_err(status(&ctx.request_id))?;
        let models = self
            .gateway
            .visible_models(&ctx.caller.studio_id, pathway)
            .iter()
            .map(|m| proto::ModelInfo {
                id: m.record.id.clone(),
                display_name: m.record.display_name.clone(),
                pathway: pathway_to_proto(m.record.pathway) as i32,
                is_default: m.is_default,
            })
            .collect();
        Ok(Response::new(proto::ListModelsResponse { models }))
    }
}
