"""What the sync and asyncio clients share: request building, metadata, options."""

from __future__ import annotations

import datetime
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple, Union

from google.protobuf import duration_pb2

from .v1 import admin_pb2, ai_pb2, common_pb2

#: The default deadline of a unary call, in seconds.
DEFAULT_TIMEOUT = 60.0
#: The default deadline of a whole stream, in seconds.
DEFAULT_STREAM_TIMEOUT = 300.0

#: Keepalive pings on idle connections with calls in flight; City's transport accepts them.
CHANNEL_OPTIONS: Tuple[Tuple[str, int], ...] = (
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 0),
    ("grpc.http2.max_pings_without_data", 0),
)

_ROLES = {
    "system": common_pb2.ROLE_SYSTEM,
    "user": common_pb2.ROLE_USER,
    "assistant": common_pb2.ROLE_ASSISTANT,
}

#: A conversation: one user message as a string, or messages as ``ai_pb2.Message``
#: or ``(role, content)`` pairs with role "system", "user" or "assistant".
Messages = Union[str, Sequence[Union[ai_pb2.Message, Tuple[str, str]]]]
Ttl = Union[datetime.timedelta, float, int, None]


def user_metadata(studio_id: str, user_token: str) -> Tuple[Tuple[str, str], ...]:
    return (("x-studio-id", studio_id), ("authorization", f"Bearer {user_token}"))


def bearer_metadata(key: str) -> Tuple[Tuple[str, str], ...]:
    return (("authorization", f"Bearer {key}"),)


def messages(value: Messages) -> list[ai_pb2.Message]:
    if isinstance(value, str):
        return [ai_pb2.Message(role=common_pb2.ROLE_USER, content=value)]
    out = []
    for m in value:
        if isinstance(m, ai_pb2.Message):
            out.append(m)
        else:
            role, content = m
            out.append(ai_pb2.Message(role=_ROLES[role], content=content))
    return out


def generation_config(
    temperature: Optional[float], top_p: Optional[float], stop: Optional[Sequence[str]]
) -> Optional[ai_pb2.GenerationConfig]:
    if temperature is None and top_p is None and not stop:
        return None
    config = ai_pb2.GenerationConfig(stop_sequences=list(stop or ()))
    if temperature is not None:
        config.temperature = temperature
    if top_p is not None:
        config.top_p = top_p
    return config


def text_fields(
    prompt: Messages,
    model: str,
    max_tokens: Optional[int],
    temperature: Optional[float],
    top_p: Optional[float],
    stop: Optional[Sequence[str]],
    metadata: Optional[Mapping[str, str]],
) -> Dict[str, Any]:
    fields: Dict[str, Any] = {"model": model, "messages": messages(prompt), "metadata": dict(metadata or {})}
    if max_tokens is not None:
        fields["max_tokens"] = max_tokens
    config = generation_config(temperature, top_p, stop)
    if config is not None:
        fields["config"] = config
    return fields


def image_request(
    prompt: str, model: str, count: Optional[int], metadata: Optional[Mapping[str, str]]
) -> ai_pb2.ImageRequest:
    request = ai_pb2.ImageRequest(model=model, prompt=prompt, metadata=dict(metadata or {}))
    if count is not None:
        request.count = count
    return request


def issue_user_token_request(studio_id: str, user_id: str, ttl: Ttl) -> admin_pb2.IssueUserTokenRequest:
    request = admin_pb2.IssueUserTokenRequest(studio_id=studio_id, user_id=user_id)
    if ttl is not None:
        duration = duration_pb2.Duration()
        if isinstance(ttl, datetime.timedelta):
            duration.FromTimedelta(ttl)
        else:
            duration.FromNanoseconds(int(round(ttl * 1e9)))
        request.ttl.CopyFrom(duration)
    return request
