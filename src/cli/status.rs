//! A refused call as one readable line: `<CODE>: <message> (reason: …)`.

use tonic::{Code, Status};
use tonic_types::StatusExt;

/// The canonical name of a gRPC code, as in `google.rpc.Code`.
pub(crate) fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// `<CODE>: <message> (reason: <ErrorInfo reason>)`, without the reason when
/// the status carries no ErrorInfo.
pub(crate) fn status_line(status: &Status) -> String {
    let code = code_name(status.code());
    let message = status.message();
    match status.get_error_details().error_info() {
        Some(info) => format!("{code}: {message} (reason: {})", info.reason),
        None => format!("{code}: {message}"),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use tonic_types::ErrorDetails;

    use super::*;

    #[test]
    fn status_lines_carry_code_message_and_reason() {
        let details = ErrorDetails::with_error_info("STUDIO_NOT_FOUND", "downcity", HashMap::new());
        let status =
            Status::with_error_details(Code::NotFound, "studio `x` does not exist", details);
        assert_eq!(
            status_line(&status),
            "NOT_FOUND: studio `x` does not exist (reason: STUDIO_NOT_FOUND)"
        );
        let plain = Status::unavailable("down");
        assert_eq!(status_line(&plain), "UNAVAILABLE: down");
    }
}
