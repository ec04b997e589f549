"""The asyncio twin of UserClient (grpc.aio)."""

from __future__ import annotations

from typing import Any, AsyncIterator, Awaitable, Callable, List, Mapping, Optional, Sequence, TypeVar

import grpc
import grpc.aio

from . import _common
from ._common import Messages
from ._errors import DowncityError
from ._tls import TLS, connection
from .v1 import ai_pb2, ai_pb2_grpc, common_pb2


T = TypeVar("T")


async def _unary(fn: Callable[..., Awaitable[T]], request: Any, metadata: Any,
                 timeout: Optional[float]) -> T:
    try:
        return await fn(request, metadata=metadata, timeout=timeout)
    except grpc.RpcError as error:
        raise DowncityError.from_rpc_error(error) from None


class AsyncTextStream(AsyncIterator[ai_pb2.StreamTextResponse]):
    """The asyncio TextStream: ``async for piece in stream``; ``cancel()`` stops it."""

    def __init__(self, call: Any) -> None:
        self._call = call
        self.usage: Optional[common_pb2.Usage] = None
        self.finish_reason: int = common_pb2.FINISH_REASON_UNSPECIFIED
        self.model: str = ""
        self.request_id: str = ""
        self.text: str = ""

    def __aiter__(self) -> "AsyncTextStream":
        return self

    async def __anext__(self) -> ai_pb2.StreamTextResponse:
        if self._call.cancelled():
            raise StopAsyncIteration
        try:
            piece: Any = await self._call.read()
        except grpc.RpcError as error:
            if self._call.cancelled():
                raise StopAsyncIteration from None
            raise DowncityError.from_rpc_error(error) from None
        except BaseException:
            if self._call.cancelled():
                raise StopAsyncIteration from None
            raise
        if piece is grpc.aio.EOF:
            raise StopAsyncIteration
        self.text += piece.delta
        if piece.model:
            self.model = piece.model
        if piece.request_id:
            self.request_id = piece.request_id
        if piece.HasField("usage"):
            self.usage = piece.usage
        if piece.finish_reason:
            self.finish_reason = piece.finish_reason
        result: ai_pb2.StreamTextResponse = piece
        return result

    def cancel(self) -> None:
        self._call.cancel()

    async def __aenter__(self) -> "AsyncTextStream":
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.cancel()


class AsyncAI:
    """The AI calls of an AsyncUserClient; the same arguments as the sync ``AI``."""

    def __init__(self, stub: ai_pb2_grpc.AIServiceAsyncStub, metadata: Any, timeout: float,
                 stream_timeout: float) -> None:
        self._stub = stub
        self._metadata = metadata
        self._timeout = timeout
        self._stream_timeout = stream_timeout

    async def text(
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
        request = ai_pb2.TextRequest(
            **_common.text_fields(prompt, messages, model, max_tokens, temperature, top_p, stop, metadata))
        return await _unary(self._stub.Text, request, self._metadata, timeout or self._timeout)

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
    ) -> AsyncTextStream:
        request = ai_pb2.StreamTextRequest(
            **_common.text_fields(prompt, messages, model, max_tokens, temperature, top_p, stop, metadata))
        call = self._stub.StreamText(request, metadata=self._metadata,
                                     timeout=timeout or self._stream_timeout)
        return AsyncTextStream(call)

    async def image(
        self,
        prompt: str,
        *,
        model: str = "",
        count: Optional[int] = None,
        metadata: Optional[Mapping[str, str]] = None,
        timeout: Optional[float] = None,
    ) -> ai_pb2.ImageResponse:
        request = _common.image_request(prompt, model, count, metadata)
        return await _unary(self._stub.Image, request, self._metadata, timeout or self._timeout)

    async def models(self, pathway: common_pb2.Pathway.ValueType = common_pb2.PATHWAY_UNSPECIFIED, *,
                     timeout: Optional[float] = None) -> List[ai_pb2.ModelInfo]:
        response = await _unary(self._stub.ListModels, ai_pb2.ListModelsRequest(pathway=pathway),
                                self._metadata, timeout or self._timeout)
        return list(response.models)


class AsyncUserClient:
    """``AsyncUserClient(target, studio_id, user_token)``: UserClient for asyncio.

    Create it inside the running event loop; ``await client.close()`` (or
    ``async with``) when done.
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
    ) -> None:
        address, creds, options = connection(target, tls, credentials, list(_common.CHANNEL_OPTIONS))
        if creds is None:
            self.channel = grpc.aio.insecure_channel(address, options=options)
        else:
            self.channel = grpc.aio.secure_channel(address, creds, options=options)
        self.metadata = _common.user_metadata(studio_id, user_token)
        self.stub = ai_pb2_grpc.AIServiceStub(self.channel)
        self.ai = AsyncAI(self.stub, self.metadata, timeout, stream_timeout)

    async def close(self) -> None:
        await self.channel.close()

    async def __aenter__(self) -> "AsyncUserClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
