"""Conversations in every accepted shape (OpenAI-style dicts too), against a real City."""

from __future__ import annotations

import asyncio

import pytest

from downcity import AsyncUserClient, UserClient
from downcity.v1 import ai_pb2, common_pb2

CHAT = [
    {"role": "system", "content": "be brief"},
    {"role": "user", "content": "first"},
    {"role": "assistant", "content": "ok"},
    {"role": "user", "content": "second question"},
]


@pytest.fixture(scope="module")
def client(city):
    with UserClient(city.addr, city.studio_id, city.user_token) as c:
        yield c


def test_openai_dicts_as_keyword(client):
    assert client.ai.text(messages=[{"role": "user", "content": "hi"}]).text == "Echo: hi"
    assert client.ai.text(messages=CHAT).text == "Echo: second question"
    stream = client.ai.stream(messages=CHAT)
    assert "".join(p.delta for p in stream) == "Echo: second question"
    assert stream.usage is not None


def test_openai_dicts_positionally(client):
    assert client.ai.text(CHAT).text == "Echo: second question"
    assert "".join(p.delta for p in client.ai.stream(CHAT)) == "Echo: second question"


def test_every_form_mixed(client):
    conversation = [
        ai_pb2.Message(role=common_pb2.ROLE_SYSTEM, content="be brief"),
        ("user", "first"),
        {"role": common_pb2.ROLE_ASSISTANT, "content": "ok"},
        {"role": "developer", "content": "still brief"},
        {"role": "user", "content": [{"type": "text", "text": "in "}, {"type": "text", "text": "parts"}]},
    ]
    assert client.ai.text(messages=conversation).text == "Echo: in parts"
    assert client.ai.text(messages="just a string").text == "Echo: just a string"


@pytest.mark.parametrize("call", ["text", "stream"])
@pytest.mark.parametrize(
    ("args", "kwargs", "expected"),
    [
        ((), {}, "missing the conversation: expected a string"),
        (("hi",), {"messages": "hi"}, "not both"),
        (({"role": "user", "content": "hi"},), {}, "expected a string (one user message) or a list"),
        ((), {"messages": [{"role": "user"}]}, 'messages[0]: a dict needs "role" and "content"'),
        ((), {"messages": [{"content": "hi"}]}, 'a dict needs "role" and "content"'),
        ((), {"messages": ["hi"]}, "messages[0]: expected an ai_pb2.Message, a (role, content) pair"),
        ((), {"messages": [("user", "a"), ("user",)]}, "messages[1]: expected"),
        ((), {"messages": [{"role": None, "content": "hi"}]}, "messages[0]: the role is"),
        ((), {"messages": [{"role": "user", "content": 42}]}, "messages[0]: the content is a string"),
        ((), {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]},
         'content parts must be {"type": "text", "text": str}'),
        ((), {"messages": 42}, "got int"),
    ],
)
def test_bad_shapes_raise_type_error_before_any_call(client, call, args, kwargs, expected):
    with pytest.raises(TypeError) as caught:
        getattr(client.ai, call)(*args, **kwargs)
    assert expected in str(caught.value)


def test_unknown_role_is_a_value_error(client):
    with pytest.raises(ValueError, match=r"unknown role 'tool'; expected one of \['assistant', 'developer'"):
        client.ai.text(messages=[{"role": "tool", "content": "42"}])


def test_async_client_takes_the_same_shapes(city):
    async def run() -> None:
        async with AsyncUserClient(city.addr, city.studio_id, city.user_token) as user:
            assert (await user.ai.text(messages=CHAT)).text == "Echo: second question"
            assert (await user.ai.text(CHAT)).text == "Echo: second question"
            pieces = [p.delta async for p in user.ai.stream(messages=[{"role": "user", "content": "a b"}])]
            assert "".join(pieces) == "Echo: a b"
            with pytest.raises(TypeError, match="not both"):
                await user.ai.text("hi", messages=CHAT)
            with pytest.raises(TypeError, match='a dict needs "role" and "content"'):
                user.ai.stream(messages=[{"text": "hi"}])

    asyncio.run(run())
