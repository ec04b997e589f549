package downcity

import (
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Domain is the ErrorInfo domain of City's errors.
const Domain = "downcity"

// ErrorInfoOf returns the google.rpc.ErrorInfo of a call's error, or nil.
func ErrorInfoOf(err error) *errdetails.ErrorInfo {
	st, ok := status.FromError(err)
	if !ok {
		return nil
	}
	for _, detail := range st.Details() {
		if info, ok := detail.(*errdetails.ErrorInfo); ok {
			return info
		}
	}
	return nil
}

// ReasonOf returns the ErrorInfo reason of a call's error, such as
// "TOKEN_EXPIRED"; "" when there is none (nil error, or not from City).
func ReasonOf(err error) string {
	return ErrorInfoOf(err).GetReason()
}

// CodeOf returns the gRPC code of a call's error (codes.OK for nil).
func CodeOf(err error) codes.Code {
	return status.Code(err)
}
