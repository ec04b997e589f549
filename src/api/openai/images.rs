//! `POST /v1/images/generations`: OpenAI's request becomes AIService's
//! ImageRequest and runs through the same gateway call. Images come back
//! inline as `b64_json` only: City stores no image it could link to, so
//! `response_format: "url"` is refused (400, param `response_format`).

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::wire::{ImageData, ImageRequest, ImagesResponse};
use super::{ApiError, Face, Unsupported, parse, refuse_unsupported, rename_fields, unix_now};
use crate::api::caps::CallCaps;
use crate::error::{Error, Result, Violations};
use crate::gateway::ImageInput;
use crate::proto;

const UNSUPPORTED: &[(&str, Unsupported)] = &[("user", Unsupported::Hint)];

pub async fn generations(
    State(face): State<Face>,
    headers: HeaderMap,
    body: std::result::Result<Bytes, BytesRejection>,
) -> std::result::Result<Response, ApiError> {
    let ctx = face.context(&headers)?;
    let id = ctx.request_id.clone();
    let request: ImageRequest = parse(body, face.max_request_bytes, &id)?;
    let refused = |err: Error| ApiError::new(rename_fields(err, &[("count", "n")]), &id);
    let input = image_input(request, &face.caps).map_err(refused)?;
    let answer = face.gateway.image(ctx, input).await.map_err(refused)?;
    let images = ImagesResponse {
        created: unix_now(),
        data: answer
            .images
            .iter()
            .map(|image| ImageData {
                b64_json: STANDARD.encode(&image.data),
            })
            .collect(),
    };
    let mut response = axum::Json(images).into_response();
    if let Ok(value) = HeaderValue::from_str(&id.0) {
        response.headers_mut().insert("x-request-id", value);
    }
    Ok(response)
}

fn image_input(request: ImageRequest, caps: &CallCaps) -> Result<ImageInput> {
    let mut v = Violations::default();
    v.absorb(refuse_unsupported(&request.other, UNSUPPORTED, ""));
    v.check(
        matches!(request.response_format.as_deref(), None | Some("b64_json")),
        "response_format",
        "City returns images inline: only b64_json is supported (there is no url to fetch)",
    );
    v.finish(())?;
    let image_request = proto::ImageRequest {
        model: request.model.unwrap_or_default(),
        prompt: request.prompt,
        count: request.n.map(|n| i32::try_from(n).unwrap_or(i32::MAX)),
        metadata: Default::default(),
    };
    caps.check_image(&image_request.prompt)?;
    ImageInput::try_from(image_request)
}
