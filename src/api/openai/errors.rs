//! Errors in OpenAI's shape: `{"error": {"message", "type", "param",
//! "code"}}`, the HTTP status of the gRPC code the same error has on the
//! gRPC face, City's ErrorInfo reason lower-cased in `code`, and
//! `Retry-After` (whole seconds) wherever the gRPC status carries RetryInfo.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tonic::Code;
use tonic_types::StatusExt;

use crate::auth::RequestId;
use crate::error::Error;

/// One refused request, ready to leave as an HTTP response.
pub struct ApiError {
    status: StatusCode,
    body: serde_json::Value,
    retry_after_secs: Option<u64>,
    request_id: RequestId,
}

impl ApiError {
    /// City's error as the gRPC face would report it, in OpenAI's shape.
    pub fn new(error: Error, request_id: &RequestId) -> Self {
        let param = match &error {
            Error::InvalidArgument(violations) => violations.first().map(|v| v.field.clone()),
            _ => None,
        };
        // The gRPC status decides the message (internal detail stays in
        // the log) and the retry delay, so both faces say the same.
        let status = error.to_status(&request_id.0);
        let retry_after_secs = status
            .get_details_retry_info()
            .and_then(|info| info.retry_delay)
            .map(|delay| delay.as_millis().div_ceil(1000).max(1) as u64);
        let http = http_status(error.code());
        ApiError {
            status: http,
            body: error_body(status.message(), http, param, error.reason()),
            retry_after_secs,
            request_id: request_id.clone(),
        }
    }

    /// A request body over `[server] max_request_bytes`.
    pub fn too_large(limit: usize, request_id: &RequestId) -> Self {
        let message = format!("the request body is over the limit of {limit} bytes");
        let status = StatusCode::PAYLOAD_TOO_LARGE;
        ApiError {
            status,
            body: error_body(&message, status, None, "REQUEST_TOO_LARGE"),
            retry_after_secs: None,
            request_id: request_id.clone(),
        }
    }

    /// The error as one SSE event, for a stream that fails after it began.
    pub fn sse_event(&self) -> String {
        format!("data: {}\n\n", self.body)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(self.body)).into_response();
        let headers = response.headers_mut();
        if let Some(secs) = self.retry_after_secs {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if let Ok(id) = HeaderValue::from_str(&self.request_id.0) {
            headers.insert("x-request-id", id);
        }
        response
    }
}

fn error_body(
    message: &str,
    status: StatusCode,
    param: Option<String>,
    reason: &str,
) -> serde_json::Value {
    json!({
        "error": {
            "message": message,
            "type": error_type(status),
            "param": param,
            "code": reason.to_ascii_lowercase(),
        }
    })
}

/// The HTTP status of a gRPC code.
pub fn http_status(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => {
            StatusCode::BAD_REQUEST
        }
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        // nginx's "client closed request": nobody reads it but the log.
        Code::Cancelled => StatusCode::from_u16(499).expect("499 is a valid status"),
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::Unknown | Code::Internal | Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// OpenAI's `error.type` for a status.
fn error_type(status: StatusCode) -> &'static str {
    match status.as_u16() {
        401 => "authentication_error",
        403 => "permission_error",
        429 => "rate_limit_error",
        500.. => "server_error",
        _ => "invalid_request_error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_call_error_code_has_its_status() {
        let pairs = [
            (Code::Unauthenticated, 401),
            (Code::PermissionDenied, 403),
            (Code::NotFound, 404),
            (Code::InvalidArgument, 400),
            (Code::ResourceExhausted, 429),
            (Code::Unavailable, 503),
            (Code::DeadlineExceeded, 504),
            (Code::Internal, 500),
        ];
        for (code, status) in pairs {
            assert_eq!(http_status(code).as_u16(), status, "{code:?}");
        }
    }

    #[test]
    fn the_body_has_openai_fields_and_the_reason_lower_cased() {
        let id = RequestId("r-1".into());
        let error = ApiError::new(Error::invalid("temperature", "must be 0 to 2"), &id);
        assert_eq!(error.status, StatusCode::BAD_REQUEST);
        assert_eq!(error.body["error"]["code"], "invalid_argument");
        assert_eq!(error.body["error"]["param"], "temperature");
        assert_eq!(error.body["error"]["type"], "invalid_request_error");
        assert!(error.retry_after_secs.is_none());
    }
}
