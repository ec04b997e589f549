"""One exception type for every failed call: the gRPC code plus the ErrorInfo."""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Optional, Tuple

import grpc
import google.rpc.error_details_pb2 as error_details_pb2
import google.rpc.status_pb2 as status_pb2

DOMAIN = "downcity"
_DETAILS_KEY = "grpc-status-details-bin"


class DowncityError(Exception):
    """A failed call to City.

    ``code`` is the canonical gRPC status code, ``reason`` the UPPER_SNAKE reason of
    the ``google.rpc.ErrorInfo`` City attaches (such as ``TOKEN_EXPIRED``; empty if
    the error did not come from City, e.g. a deadline hit in the client), and
    ``metadata`` the ErrorInfo's metadata.
    """

    def __init__(
        self,
        code: grpc.StatusCode,
        message: str,
        reason: str = "",
        domain: str = "",
        metadata: Optional[Mapping[str, str]] = None,
        status: Optional[status_pb2.Status] = None,
    ) -> None:
        super().__init__(f"{code.name}: {reason + ': ' if reason else ''}{message}")
        self.code = code
        self.message = message
        self.reason = reason
        self.domain = domain
        self.metadata: dict[str, str] = dict(metadata or {})
        #: The full google.rpc.Status (all details), when City sent one.
        self.status = status

    @classmethod
    def from_rpc_error(cls, error: grpc.RpcError) -> "DowncityError":
        """Converts a grpc.RpcError (sync or asyncio) raised by a raw stub."""
        code = _call(error, "code") or grpc.StatusCode.UNKNOWN
        message = _call(error, "details") or ""
        trailers = _call(error, "trailing_metadata")
        return cls.from_status(code, message, trailers)

    @classmethod
    def from_status(
        cls,
        code: grpc.StatusCode,
        message: str,
        trailers: Optional[Iterable[Tuple[str, Any]]],
    ) -> "DowncityError":
        status = _rich_status(trailers)
        if status is None:
            return cls(code, message)
        for detail in status.details:
            info = error_details_pb2.ErrorInfo()
            if detail.Unpack(info):
                return cls(code, status.message or message, info.reason, info.domain,
                           dict(info.metadata), status)
        return cls(code, status.message or message, status=status)


def _call(error: Any, name: str) -> Any:
    method = getattr(error, name, None)
    if method is None:
        return None
    try:
        return method()
    except Exception:  # pragma: no cover - a broken error object
        return None


def _rich_status(trailers: Optional[Iterable[Tuple[str, Any]]]) -> Optional[status_pb2.Status]:
    if not trailers:
        return None
    for key, value in trailers:
        if key == _DETAILS_KEY:
            try:
                return status_pb2.Status.FromString(value)
            except Exception:
                return None
    return None
