"""The official `openai` Python SDK against a real City's OpenAI-compatible
face: base_url and a user token, nothing else. Each successful call leaves
exactly one usage row, found by the request id the SDK saw."""

from __future__ import annotations

import base64
from typing import Any

import openai
import pytest

from conftest import City

HELLO = [{"role": "user", "content": "hello there"}]


def only_row(city: City, studio: str) -> dict[str, Any]:
    rows = city.usage_rows(studio)
    assert len(rows) == 1, rows
    return rows[0]


def test_a_completion(city: City) -> None:
    studio, token = city.new_user()
    completion = city.client(token).chat.completions.create(model="mock-text", messages=HELLO)
    assert completion.choices[0].message.content == "Echo: hello there"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.model == "mock-text"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (2, 3)
    row = only_row(city, studio)
    assert row["request_id"] == completion._request_id
    assert row["model_id"] == "mock-text"
    assert (int(row["input_tokens"]), int(row["output_tokens"])) == (2, 3)


def test_a_streamed_completion_with_usage(city: City) -> None:
    studio, token = city.new_user()
    stream = city.client(token).chat.completions.create(
        model="mock-text", messages=HELLO, stream=True, stream_options={"include_usage": True},
    )
    text, usage, finish = "", None, None
    for chunk in stream:
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
            finish = chunk.choices[0].finish_reason or finish
        if chunk.usage is not None:
            usage = chunk.usage
    assert text == "Echo: hello there"
    assert finish == "stop"
    assert usage is not None and usage.completion_tokens == 3
    row = only_row(city, studio)
    assert int(row["output_tokens"]) == 3


def test_an_image(city: City) -> None:
    studio, token = city.new_user()
    images = city.client(token).images.generate(
        model="mock-image", prompt="a red square", response_format="b64_json",
    )
    assert images.data is not None and len(images.data) == 1
    png = base64.b64decode(images.data[0].b64_json or "")
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    row = only_row(city, studio)
    assert row["request_id"] == images._request_id
    assert int(row["images"]) == 1


def test_the_model_list(city: City) -> None:
    studio, token = city.new_user()
    ids = sorted(m.id for m in city.client(token).models.list())
    assert ids == ["mock-image", "mock-text"]
    assert city.usage_rows(studio) == []


def test_a_bad_token_is_an_authentication_error(city: City) -> None:
    with pytest.raises(openai.AuthenticationError) as raised:
        city.client("dcu_nosuchtoken_x").chat.completions.create(model="mock-text", messages=HELLO)
    assert raised.value.status_code == 401
    assert raised.value.code == "token_invalid"


def test_a_quota_hit_is_a_rate_limit_error_with_retry_after(city: City) -> None:
    studio, token = city.new_user()
    city.admin("limits", "set", studio, "--requests-per-minute", "1")
    client = city.client(token)
    first = client.chat.completions.create(model="mock-text", messages=HELLO)
    with pytest.raises(openai.RateLimitError) as raised:
        client.chat.completions.create(model="mock-text", messages=HELLO)
    assert raised.value.code == "quota_exceeded"
    retry_after = int(raised.value.response.headers["retry-after"])
    assert 1 <= retry_after <= 60
    # The refused call left no row; the first left its one.
    assert only_row(city, studio)["request_id"] == first._request_id


def test_a_disabled_model_is_not_found(city: City) -> None:
    studio, token = city.new_user()
    city.admin("models", "upsert", "sdk-off", "--provider", "mock", "--upstream", "off",
               "--pathway", "text", "--disabled")
    with pytest.raises(openai.NotFoundError) as raised:
        city.client(token).chat.completions.create(model="sdk-off", messages=HELLO)
    assert raised.value.code == "model_not_found"
    assert city.usage_rows(studio) == []


def test_an_unsupported_field_is_a_bad_request_naming_it(city: City) -> None:
    _, token = city.new_user()
    with pytest.raises(openai.BadRequestError) as raised:
        city.client(token).chat.completions.create(
            model="mock-text", messages=HELLO,
            tools=[{"type": "function", "function": {"name": "f"}}],
        )
    assert raised.value.param == "tools"
