//! A refused call as one readable line: `<CODE>: <message> (reason: …)`.

use tonic::Status;
use tonic_types::StatusExt;

pub(crate) use downcity::error::code_name;

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

    use tonic::Code;
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
