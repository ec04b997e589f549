"""What the sync and asyncio clients share: request building, metadata, options."""

from __future__ import annotations

import datetime
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

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
    "developer": common_pb2.ROLE_SYSTEM,  # OpenAI's newer name for the system role
    "user": common_pb2.ROLE_USER,
    "assistant": common_pb2.ROLE_ASSISTANT,
}

#: One message: an ``ai_pb2.Message``, a ``(role, content)`` pair, or an OpenAI-style
#: ``{"role": ..., "content": ...}`` dict. Roles: "system" (or "developer"), "user",
#: "assistant", or a ``ROLE_*`` value; content: a string, or a list of
#: ``{"type": "text", "text": ...}`` parts.
Message = Union[ai_pb2.Message, Tuple[str, str], Mapping[str, Any]]
#: A conversation: one user message as a string, or messages oldest first.
Messages = Union[str, Sequence[Message]]
Ttl = Union[datetime.timedelta, float, int, None]

_EXPECTED = ('a string (one user message) or a list of messages, each an ai_pb2.Message, '
             'a (role, content) pair or a {"role": ..., "content": ...} dict')


def user_metadata(studio_id: str, user_token: str) -> Tuple[Tuple[str, str], ...]:
    return (("x-studio-id", studio_id), ("authorization", f"Bearer {user_token}"))


def bearer_metadata(key: str) -> Tuple[Tuple[str, str], ...]:
    return (("authorization", f"Bearer {key}"),)


def conversation(prompt: Optional[Messages], messages: Optional[Messages]) -> Messages:
    """The one conversation given, positionally (``prompt``) or as ``messages=``."""
    if prompt is not None and messages is not None:
        raise TypeError("give the conversation once: positionally or as messages=, not both")
    value = prompt if prompt is not None else messages
    if value is None:
        raise TypeError(f"missing the conversation: expected {_EXPECTED}")
    return value


def to_messages(value: Messages) -> List[ai_pb2.Message]:
    """Every accepted form of a conversation as ``ai_pb2.Message``s; TypeError otherwise."""
    if isinstance(value, str):
        return [ai_pb2.Message(role=common_pb2.ROLE_USER, content=value)]
    if isinstance(value, (bytes, Mapping)) or not isinstance(value, Sequence):
        raise TypeError(f"expected {_EXPECTED}; got {type(value).__name__}")
    return [_message(m, i) for i, m in enumerate(value)]


def _message(m: object, index: int) -> ai_pb2.Message:
    if isinstance(m, ai_pb2.Message):
        return m
    if isinstance(m, Mapping):
        if "role" not in m or "content" not in m:
            raise TypeError(f'messages[{index}]: a dict needs "role" and "content"; got keys {sorted(m)}')
        role, content = m["role"], m["content"]
    elif isinstance(m, tuple) and len(m) == 2:
        role, content = m
    else:
        raise TypeError(f"messages[{index}]: expected an ai_pb2.Message, a (role, content) pair "
                        f'or a {{"role": ..., "content": ...}} dict; got {type(m).__name__}')
    return ai_pb2.Message(role=_role(role, index), content=_content(content, index))


def _role(role: object, index: int) -> common_pb2.Role.ValueType:
    if isinstance(role, str):
        if role not in _ROLES:
            raise ValueError(f"messages[{index}]: unknown role {role!r}; expected one of {sorted(_ROLES)}")
        return _ROLES[role]
    if isinstance(role, int) and not isinstance(role, bool) and role in _ROLES.values():
        return common_pb2.Role.ValueType(role)
    raise TypeError(f'messages[{index}]: the role is "system", "user", "assistant" or a ROLE_* value; '
                    f"got {role!r}")


def _content(content: object, index: int) -> str:
    """A string, or OpenAI's list of content parts when every part is text."""
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence) and not isinstance(content, (bytes, Mapping)):
        texts = []
        for part in content:
            if not (isinstance(part, Mapping) and part.get("type") == "text" and isinstance(part.get("text"), str)):
                raise TypeError(f'messages[{index}]: content parts must be {{"type": "text", "text": str}}; '
                                f"got {part!r:.80}")
            texts.append(part["text"])
        return "".join(texts)
    raise TypeError(f'messages[{index}]: the content is a string or a list of {{"type": "text", "text": ...}} '
                    f"parts; got {type(content).__name__}")


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
    prompt: Optional[Messages],
    messages: Optional[Messages],
    model: str,
    max_tokens: Optional[int],
    temperature: Optional[float],
    top_p: Optional[float],
    stop: Optional[Sequence[str]],
    metadata: Optional[Mapping[str, str]],
) -> Dict[str, Any]:
    fields: Dict[str, Any] = {
        "model": model,
        "messages": to_messages(conversation(prompt, messages)),
        "metadata": dict(metadata or {}),
    }
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
