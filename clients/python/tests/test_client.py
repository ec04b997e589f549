"""The Python client against a real City."""

from __future__ import annotations

import asyncio
import datetime
import time
import uuid

import grpc
import pytest

import downcity
from downcity import AdminClient, AsyncUserClient, DowncityError, UserClient
from downcity.v1 import admin_pb2, common_pb2


@pytest.fixture(scope="module")
def client(city):
    with UserClient(city.addr, city.studio_id, city.user_token) as c:
        yield c


@pytest.fixture(scope="module")
def admin(city):
    with AdminClient(city.addr, city.admin_key) as a:
        yield a


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_text(client):
    answer = client.ai.text("Hello, City", model="mock-text")
    assert answer.text == "Echo: Hello, City"
    assert answer.model == "mock-text"
    assert answer.finish_reason == common_pb2.FINISH_REASON_STOP
    assert answer.usage.output_tokens > 0
    assert answer.request_id


def test_text_default_model_and_conversation(client):
    answer = client.ai.text([("system", "be brief"), ("user", "first"), ("assistant", "ok"),
                             ("user", "second one")], max_tokens=2)
    assert answer.text == "Echo: second"
    assert answer.finish_reason == common_pb2.FINISH_REASON_LENGTH


def test_stream_to_the_end(client):
    stream = client.ai.stream("Tell me a story", model="mock-text")
    deltas = [piece.delta for piece in stream]
    assert "".join(deltas) == "Echo: Tell me a story"
    assert len(deltas) > 1
    assert stream.text == "Echo: Tell me a story"
    assert stream.usage is not None and stream.usage.output_tokens > 0
    assert stream.finish_reason == common_pb2.FINISH_REASON_STOP
    assert stream.model == "mock-text" and stream.request_id


def test_stream_cancelled_early(client, admin):
    slow = unique("slow")
    admin.upsert_model(admin_pb2.Model(
        id=slow, display_name="Slow", provider_id="mock", upstream_model="echo",
        pathway=common_pb2.PATHWAY_TEXT, enabled=True, max_output_tokens=1000,
        max_input_tokens=100000, options={"chunk_delay_ms": "100"}))
    prompt = " ".join(f"word{i}" for i in range(100))  # 100+ pieces: 10 s to the end
    started = time.monotonic()
    got = []
    with client.ai.stream(prompt, model=slow) as stream:
        for piece in stream:
            got.append(piece.delta)
            if len(got) == 2:
                break
    # Cancelled: iterating again ends at once, without an error.
    assert list(stream) == []
    assert len(got) == 2
    assert stream.usage is None
    assert time.monotonic() - started < 5


def test_image(client):
    answer = client.ai.image("a red square", count=2)
    assert len(answer.images) == 2
    assert answer.images[0].mime_type == "image/png"
    assert answer.images[0].data[:8] == b"\x89PNG\r\n\x1a\n"
    assert answer.usage.images == 2


def test_models(client):
    models = {m.id: m for m in client.ai.models()}
    assert models["mock-text"].pathway == common_pb2.PATHWAY_TEXT and models["mock-text"].is_default
    assert models["mock-image"].pathway == common_pb2.PATHWAY_IMAGE
    assert [m.id for m in client.ai.models(common_pb2.PATHWAY_IMAGE)] == ["mock-image"]


def test_expired_token(city, admin):
    issued = admin.issue_user_token(city.studio_id, "expiring-user",
                                    ttl=datetime.timedelta(microseconds=1))
    with UserClient(city.addr, city.studio_id, issued.secret) as user:
        with pytest.raises(DowncityError) as caught:
            user.ai.text("hi")
    assert caught.value.code == grpc.StatusCode.UNAUTHENTICATED
    assert caught.value.reason == "TOKEN_EXPIRED"
    assert caught.value.domain == downcity.DOMAIN


def test_suspended_studio(city, admin):
    studio = admin.create_studio(unique("susp"), "Suspended")
    token = admin.issue_user_token(studio.id, "u1").secret
    admin.suspend_studio(studio.id)
    with UserClient(city.addr, studio.id, token) as user:
        with pytest.raises(DowncityError) as caught:
            user.ai.text("hi")
        assert caught.value.code == grpc.StatusCode.PERMISSION_DENIED
        assert caught.value.reason == "STUDIO_SUSPENDED"
        # A stream fails the same way, on its first read.
        with pytest.raises(DowncityError) as caught:
            list(user.ai.stream("hi"))
        assert caught.value.reason == "STUDIO_SUSPENDED"
        admin.activate_studio(studio.id)
        assert user.ai.text("back").text == "Echo: back"


def test_admin_round_trip(city, admin):
    studio = admin.create_studio(unique("acme"), "Acme")
    assert studio.status == admin_pb2.STUDIO_STATUS_ACTIVE
    assert admin.get_studio(studio.id).display_name == "Acme"
    assert studio.id in [s.id for s in admin.list_studios()]
    issued = admin.issue_user_token(studio.id, "user-42", ttl=3600)
    assert issued.secret.startswith("dcu_") and issued.token.user_id == "user-42"
    with UserClient(city.addr, studio.id, issued.secret) as user:
        assert user.ai.text("from acme").text == "Echo: from acme"
    # A user token is no admin credential.
    with AdminClient(city.addr, issued.secret) as not_admin:
        with pytest.raises(DowncityError) as caught:
            not_admin.get_studio(studio.id)
    assert caught.value.code in (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED)
    assert caught.value.reason


def test_async_client(city):
    async def run():
        async with AsyncUserClient(city.addr, city.studio_id, city.user_token) as user:
            answer = await user.ai.text("async hello")
            assert answer.text == "Echo: async hello"
            stream = user.ai.stream("one two three")
            pieces = [p.delta async for p in stream]
            assert "".join(pieces) == "Echo: one two three"
            assert stream.usage is not None
            stream = user.ai.stream("one two three four five")
            async for _ in stream:
                stream.cancel()
            assert stream.usage is None
            assert len(await user.ai.models()) >= 2
            assert len((await user.ai.image("x")).images) == 1
        async with AsyncUserClient(city.addr, city.studio_id, "dcu_bad_token") as bad:
            with pytest.raises(DowncityError) as caught:
                await bad.ai.text("hi")
            assert caught.value.code == grpc.StatusCode.UNAUTHENTICATED
            assert caught.value.reason == "TOKEN_INVALID"
            with pytest.raises(DowncityError) as caught:
                async for _ in bad.ai.stream("hi"):
                    pass
            assert caught.value.reason == "TOKEN_INVALID"

    asyncio.run(run())
