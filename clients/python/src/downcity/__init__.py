"""Downcity client: AI calls through a City, and its admin surface.

    from downcity import UserClient
    client = UserClient("127.0.0.1:50051", "demo", "dcu_…")
    print(client.ai.text("Hello, City").text)

The generated messages and stubs are in ``downcity.v1`` (``ai_pb2``, ``admin_pb2``,
``common_pb2`` and their ``*_pb2_grpc``).
"""

#: The one Downcity version of City and every client (Cargo.toml; scripts/check-version).
__version__ = "0.1.0"

from ._aio import AsyncAI, AsyncTextStream, AsyncUserClient
from ._client import AI, AdminClient, TextStream, UserClient
from ._errors import DOMAIN, DowncityError
from ._tls import TLS
from .v1.admin_pb2 import (
    STUDIO_STATUS_ACTIVE,
    STUDIO_STATUS_SUSPENDED,
    Model,
    Studio,
)
from .v1.ai_pb2 import ImageResponse, Message, ModelInfo, StreamTextResponse, TextResponse
from .v1.common_pb2 import (
    FINISH_REASON_LENGTH,
    FINISH_REASON_STOP,
    PATHWAY_IMAGE,
    PATHWAY_TEXT,
    ROLE_ASSISTANT,
    ROLE_SYSTEM,
    ROLE_USER,
    Usage,
)

__all__ = [
    "AI",
    "AdminClient",
    "AsyncAI",
    "AsyncTextStream",
    "AsyncUserClient",
    "DOMAIN",
    "DowncityError",
    "FINISH_REASON_LENGTH",
    "FINISH_REASON_STOP",
    "ImageResponse",
    "Message",
    "Model",
    "ModelInfo",
    "PATHWAY_IMAGE",
    "PATHWAY_TEXT",
    "ROLE_ASSISTANT",
    "ROLE_SYSTEM",
    "ROLE_USER",
    "STUDIO_STATUS_ACTIVE",
    "STUDIO_STATUS_SUSPENDED",
    "StreamTextResponse",
    "Studio",
    "TLS",
    "TextResponse",
    "TextStream",
    "UserClient",
    "Usage",
]
