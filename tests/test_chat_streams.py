"""Chat Completions streams in the shapes of other OpenAI-compatible servers.

Each file in ``tests/data/chat`` is one server's quirk (data-only framing, comments,
missing usage, extra fields, whole tool calls, errors inside the stream); its README
and ``index.json`` say which, and what llmkit must make of it. Every stream runs through
`generate()` and `stream()` of a Chat provider over llmkit's own HTTP transport, and
through `ChatProtocol` directly.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

import llmkit
from llmkit.openai import ChatProtocol

DATA = Path(__file__).parent / "data" / "chat"
INDEX: dict[str, dict[str, Any]] = json.loads((DATA / "index.json").read_text())["entries"]
FILES = sorted(INDEX)
OK = [name for name in FILES if "error" not in INDEX[name]]
FAILING = [name for name in FILES if "error" in INDEX[name]]


def chat_model(body: bytes) -> llmkit.LanguageModel:
    """A Chat model whose server answers every request with ``body`` as SSE."""

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/v1/chat/completions"
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body)

    client = httpx.Client(transport=httpx.MockTransport(handler))
    provider = llmkit.Provider(
        api_key="sk-test", base_url="http://127.0.0.1:9/v1", http_client=client, max_retries=0
    )
    return provider.language_model("any-model")


def data_payloads(body: bytes) -> list[str]:
    """The ``data`` payloads of an SSE body (comments and other fields skipped)."""
    payloads = []
    for block in body.decode().split("\n\n"):
        lines = [line[5:].lstrip() for line in block.splitlines() if line.startswith("data:")]
        if lines:
            payloads.append("\n".join(lines))
    return payloads


def check(response: llmkit.Response, expected: dict[str, Any]) -> None:
    assert response.text == expected["text"]
    assert response.finish_reason == expected["finish_reason"]
    calls = [[c.call_id, c.name, c.arguments] for c in response.tool_calls]
    assert calls == expected.get("tool_calls", [])
    assert response.refusal == expected.get("refusal")
    reasoning = "".join("".join(part.content) for part in response.reasoning)
    assert reasoning == expected.get("reasoning", "")
    usage = llmkit.Usage(**expected["usage"])
    assert response.usage == usage
    for key in ("response_id", "model"):
        if key in expected:
            assert getattr(response.metadata, key) == expected[key]


def test_every_file_is_in_the_index() -> None:
    assert sorted(p.name for p in DATA.glob("*.sse")) == FILES


@pytest.mark.parametrize("name", OK)
def test_generate_reads_the_stream(name: str) -> None:
    response = chat_model((DATA / name).read_bytes()).generate(llmkit.Call("hi"))
    check(response, INDEX[name])
    assert response.metadata.transport == "http"


@pytest.mark.parametrize("name", OK)
def test_stream_deltas_join_to_the_final_text_and_arguments(name: str) -> None:
    with chat_model((DATA / name).read_bytes()).stream(llmkit.Call("hi")) as stream:
        parts = list(stream)
    text = "".join(p.delta for p in parts if isinstance(p, llmkit.TextDelta))
    response = stream.response
    assert text == response.text + (response.refusal or "")
    for call in response.tool_calls:
        pieces = [
            p.delta for p in parts if isinstance(p, llmkit.ToolInputDelta) and p.id == call.call_id
        ]
        assert "".join(pieces) == call.arguments
    assert [type(p) for p in parts].count(llmkit.Finish) == 1
    assert isinstance(parts[-1], llmkit.Finish)


@pytest.mark.parametrize("name", OK)
def test_the_protocol_alone_gives_the_same_response(name: str) -> None:
    protocol = ChatProtocol()
    parts = []
    for payload in data_payloads((DATA / name).read_bytes()):
        parts += protocol.receive(payload)
        if protocol.done:
            break
    parts += protocol.finish()
    check(llmkit.collect(parts), INDEX[name])


@pytest.mark.parametrize("name", FAILING)
def test_failures_are_typed_with_the_partial_output(name: str) -> None:
    expected = INDEX[name]
    with pytest.raises(llmkit.LLMKitError) as caught:
        chat_model((DATA / name).read_bytes()).generate(llmkit.Call("hi"))
    error = caught.value
    assert type(error).__name__ == expected["error"]
    if "code" in expected:
        assert isinstance(error, llmkit.APIError)
        assert (error.code, error.message) == (expected["code"], expected["message"])
    assert error.partial is not None
    assert error.partial.text == expected["partial_text"]
