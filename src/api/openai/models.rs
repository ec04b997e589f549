//! `GET /v1/models` and `GET /v1/models/{model}`: the studio's visible
//! models (enabled and allowed to it), of every pathway, by City's ids.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};

use super::wire::{Model, ModelList};
use super::{ApiError, Face};
use crate::catalog::CatalogModel;
use crate::error::Error;

pub async fn list(State(face): State<Face>, headers: HeaderMap) -> Result<Response, ApiError> {
    let ctx = face.context(&headers)?;
    let data = face
        .gateway
        .visible_models(&ctx.caller.studio_id, None)
        .iter()
        .map(|m| model(m))
        .collect();
    Ok(Json(ModelList {
        object: "list",
        data,
    })
    .into_response())
}

pub async fn retrieve(
    State(face): State<Face>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let ctx = face.context(&headers)?;
    let visible = face.gateway.visible_models(&ctx.caller.studio_id, None);
    match visible.iter().find(|m| m.record.id == id) {
        Some(found) => Ok(Json(model(found)).into_response()),
        None => Err(ApiError::new(
            Error::ModelNotFound { model_id: id },
            &ctx.request_id,
        )),
    }
}

fn model(m: &CatalogModel) -> Model {
    Model {
        id: m.record.id.clone(),
        object: "model",
        created: m.record.update_ms / 1000,
        owned_by: "downcity",
    }
}
