"""The synchronous clients: UserClient (AI calls) and AdminClient."""

from __future__ import annotations

from typing import Any, Callable, Iterator, List, Mapping, Optional, Sequence, TypeVar

import grpc

from . import _common
from ._common import Messages, Ttl
from ._errors import DowncityError
from ._tls import TLS, connection
from .v1 import admin_pb2, admin_pb2_grpc, ai_pb2, ai_pb2_grpc, common_pb2

T = TypeVar("T")


def _channel(target: str, tls: Optional[TLS], credentials: Optional[grpc.ChannelCredentials]) -> grpc.Channel:
    address, credentials, options = connection(target, tls, credentials, list(_common.CHANNEL_OPTIONS))
    if credentials is None:
        return grpc.insecure_channel(address, options=options)
    return grpc.secure_channel(address, credentials, options=options)


def _unary(fn: Callable[..., T], request: Any, metadata: Any, timeout: Optional[float]) -> T:
    try:
        return fn(request, metadata=metadata, timeout=timeout)
    except grpc.RpcError as error:
        raise DowncityError.from_rpc_error(error) from None


class TextStream(Iterator[ai_pb2.StreamTextResponse]):
    """An answer as it is generated: iterate to get each piece (``.delta``).

    The last piece carries ``finish_reason`` and ``usage``; after the end they are
    also on the stream (``stream.usage``). Stop early with ``cancel()`` (or leave a
    ``with`` block, or just stop iterating and drop the stream): City stops the
    upstream call and records the usage produced so far.
    """

    def __init__(self, call: Any) -> None:
        self._call = call
        self.usage: Optional[common_pb2.Usage] = None
        self.finish_reason: int = common_pb2.FINISH_REASON_UNSPECIFIED
        self.model: str = ""
        self.request_id: str = ""
        self.text: str = ""

    def __iter__(self) -> "TextStream":
        return self

    def __next__(self) -> ai_pb2.StreamTextResponse:
        try:
            piece: ai_pb2.StreamTextResponse = next(self._call)
        except StopIteration:
            raise
        except grpc.RpcError as error:
            if error.code() == grpc.StatusCode.CANCELLED and self._call.cancelled():
                raise StopIteration from None
            raise DowncityError.from_rpc_error(error) from None
        self.text += piece.delta
        if piece.model:
            self.model = piece.model
        if piece.request_id:
            self.request_id = piece.request_id
        if piece.HasField("usage"):
            self.usage = piece.usage
        if piece.finish_reason:
            self.finish_reason = piece.finish_reason
        return piece

    def cancel(self) -> None:
        """Stops the stream; iterating afterwards ends at once."""
        self._call.cancel()

    close = cancel

    def __enter__(self) -> "TextStream":
        return self

    def __exit__(self, *exc: object) -> None:
        self.cancel()

    def __del__(self) -> None:
        try:
            self._call.cancel()
        except Exception:
            pass


class AI:
    """The AI calls of a UserClient: ``client.ai.text(...)`` and friends."""

    def __init__(self, stub: ai_pb2_grpc.AIServiceStub, metadata: Any, timeout: float,
                 stream_timeout: float) -> None:
        self._stub = stub
        self._metadata = metadata
        self._timeout = timeout
        self._stream_timeout = stream_timeout

    def text(
        self,
        prompt: Optional[Messages] = None,
        *,
        messages: Optional[Messages] = None,
        model: str = "",
        max_tokens: Optional[int] = None,
        temperature: Optional[float] = None,
        top_p: Optional[float] = None,
        stop: Optional[Sequence[str]] = None,
        metadata: Optional[Mapping[str, str]] = None,
        timeout: Optional[float] = None,
    ) -> ai_pb2.TextResponse:
        """One complete answer. ``model`` empty uses the text pathway's default.

        The conversation is ``prompt`` (positional) or ``messages=``: a string, or a list of
        OpenAI-style ``{"role": ..., "content": ...}`` dicts, ``(role, content)`` pairs or
        ``Message``s. Another shape raises TypeError before anything is sent.
        """
        request = ai_pb2.TextRequest(
            **_common.text_fields(prompt, messages, model, max_tokens, temperature, top_p, stop, metadata))
        return _unary(self._stub.Text, request, self._metadata, timeout or self._timeout)

    def stream(
        self,
        prompt: Optional[Messages] = None,
        *,
        messages: Optional[Messages] = None,
        model: str = "",
        max_tokens: Optional[int] = None,
        temperature: Optional[float] = None,
        top_p: Optional[float] = None,
        stop: Optional[Sequence[str]] = None,
        metadata: Optional[Mapping[str, str]] = None,
        timeout: Optional[float] = None,
    ) -> TextStream:
        """The answer piece by piece; see TextStream."""
        request = ai_pb2.StreamTextRequest(
            **_common.text_fields(prompt, messages, model, max_tokens, temperature, top_p, stop, metadata))
        call = self._stub.StreamText(request, metadata=self._metadata,
                                     timeout=timeout or self._stream_timeout)
        return TextStream(call)

    def image(
        self,
        prompt: str,
        *,
        model: str = "",
        count: Optional[int] = None,
        metadata: Optional[Mapping[str, str]] = None,
        timeout: Optional[float] = None,
    ) -> ai_pb2.ImageResponse:
        """Generated images. ``model`` empty uses the image pathway's default."""
        request = _common.image_request(prompt, model, count, metadata)
        return _unary(self._stub.Image, request, self._metadata, timeout or self._timeout)

    def models(self, pathway: common_pb2.Pathway.ValueType = common_pb2.PATHWAY_UNSPECIFIED, *,
               timeout: Optional[float] = None) -> List[ai_pb2.ModelInfo]:
        """The models this studio may use (all pathways unless one is given)."""
        response = _unary(self._stub.ListModels, ai_pb2.ListModelsRequest(pathway=pathway),
                          self._metadata, timeout or self._timeout)
        return list(response.models)


class UserClient:
    """An end user's connection to City: ``UserClient(target, studio_id, user_token)``.

    ``target`` is ``host:port`` or ``http://host:port`` (plaintext), or ``https://host:port``
    (TLS with the system roots); ``tls=TLS(ca=..., cert=..., key=...)`` connects over TLS with a
    private CA and/or a client certificate (mTLS), ``credentials=`` with any
    ``grpc.ChannelCredentials``. Calls get a default deadline
    (``timeout`` seconds; ``stream_timeout`` for streams) and the connection
    keepalive pings. Failed calls raise DowncityError.
    """

    def __init__(
        self,
        target: str,
        studio_id: str,
        user_token: str,
        *,
        tls: Optional[TLS] = None,
        credentials: Optional[grpc.ChannelCredentials] = None,
        timeout: float = _common.DEFAULT_TIMEOUT,
        stream_timeout: float = _common.DEFAULT_STREAM_TIMEOUT,
        channel: Optional[grpc.Channel] = None,
    ) -> None:
        self.channel = channel or _channel(target, tls, credentials)
        self._owns_channel = channel is None
        #: The call metadata City expects, for use with the raw ``stub``.
        self.metadata = _common.user_metadata(studio_id, user_token)
        #: The generated AIService stub on this channel (pass ``metadata=client.metadata``).
        self.stub = ai_pb2_grpc.AIServiceStub(self.channel)
        self.ai = AI(self.stub, self.metadata, timeout, stream_timeout)

    def close(self) -> None:
        if self._owns_channel:
            self.channel.close()

    def __enter__(self) -> "UserClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AdminClient:
    """The admin surface: ``AdminClient(target, admin_key)`` (or a studio key).

    Common calls have methods; every AdminService call is on ``admin.stub`` (pass
    ``metadata=admin.metadata``). Failed calls raise DowncityError.
    """

    def __init__(
        self,
        target: str,
        key: str,
        *,
        tls: Optional[TLS] = None,
        credentials: Optional[grpc.ChannelCredentials] = None,
        timeout: float = _common.DEFAULT_TIMEOUT,
        channel: Optional[grpc.Channel] = None,
    ) -> None:
        self.channel = channel or _channel(target, tls, credentials)
        self._owns_channel = channel is None
        self.metadata = _common.bearer_metadata(key)
        self.stub = admin_pb2_grpc.AdminServiceStub(self.channel)
        self._timeout = timeout

    def call(self, method: str, request: Any, *, timeout: Optional[float] = None) -> Any:
        """Any unary AdminService call by name, e.g. ``call("ListStudios", req)``."""
        return _unary(getattr(self.stub, method), request, self.metadata, timeout or self._timeout)

    def create_studio(self, studio_id: str = "", display_name: str = "") -> admin_pb2.Studio:
        response: admin_pb2.CreateStudioResponse = self.call(
            "CreateStudio",
            admin_pb2.CreateStudioRequest(studio_id=studio_id, display_name=display_name))
        return response.studio

    def get_studio(self, studio_id: str) -> admin_pb2.Studio:
        response: admin_pb2.GetStudioResponse = self.call(
            "GetStudio", admin_pb2.GetStudioRequest(studio_id=studio_id))
        return response.studio

    def list_studios(self) -> Iterator[admin_pb2.Studio]:
        """Every studio, following the pages."""
        token = ""
        while True:
            page: admin_pb2.ListStudiosResponse = self.call("ListStudios", admin_pb2.ListStudiosRequest(page_token=token))
            yield from page.studios
            token = page.next_page_token
            if not token:
                return

    def update_studio(self, studio_id: str, *, display_name: Optional[str] = None,
                      status: admin_pb2.StudioStatus.ValueType = admin_pb2.STUDIO_STATUS_UNSPECIFIED,
                      ) -> admin_pb2.Studio:
        request = admin_pb2.UpdateStudioRequest(studio_id=studio_id, status=status)
        if display_name is not None:
            request.display_name = display_name
        response: admin_pb2.UpdateStudioResponse = self.call("UpdateStudio", request)
        return response.studio

    def suspend_studio(self, studio_id: str) -> admin_pb2.Studio:
        return self.update_studio(studio_id, status=admin_pb2.STUDIO_STATUS_SUSPENDED)

    def activate_studio(self, studio_id: str) -> admin_pb2.Studio:
        return self.update_studio(studio_id, status=admin_pb2.STUDIO_STATUS_ACTIVE)

    def issue_user_token(self, studio_id: str, user_id: str,
                         ttl: Ttl = None) -> admin_pb2.IssueUserTokenResponse:
        """A new user token; ``.secret`` is the bearer secret (shown only here).

        ``ttl`` is a timedelta or seconds; None never expires.
        """
        response: admin_pb2.IssueUserTokenResponse = self.call(
            "IssueUserToken", _common.issue_user_token_request(studio_id, user_id, ttl))
        return response

    def revoke_user_token(self, studio_id: str, token_id: str) -> admin_pb2.UserToken:
        response: admin_pb2.RevokeUserTokenResponse = self.call(
            "RevokeUserToken",
            admin_pb2.RevokeUserTokenRequest(studio_id=studio_id, token_id=token_id))
        return response.token

    def upsert_model(self, model: admin_pb2.Model) -> admin_pb2.Model:
        response: admin_pb2.UpsertModelResponse = self.call(
            "UpsertModel", admin_pb2.UpsertModelRequest(model=model))
        return response.model

    def close(self) -> None:
        if self._owns_channel:
            self.channel.close()

    def __enter__(self) -> "AdminClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
