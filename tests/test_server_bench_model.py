"""The `bench-words-<N>` scripted model: N word deltas, on every endpoint and transport.

Long answers are written in batches (many events per socket write); these tests check
that what arrives is still exactly the event sequence, in order, on a connection that
stays usable afterwards.
"""

from __future__ import annotations

import json
import socket
import time
from typing import Any

import httpx
import pytest
import websocket

from llmkit.testing import ResponsesServer, _models as m
from llmkit.testing._events import Accounting, ResponseMeta, render_generation

LONG = 10_000  # about 2 MB of SSE: dozens of 64 KiB batches


def test_bench_words_parses_only_the_exact_form() -> None:
    assert m.bench_words("bench-words-1") == 1
    assert m.bench_words("bench-words-99999999") == 99_999_999
    for other in ("bench-words-0", "bench-words-012", "bench-words-", "bench-words-1x", None):
        assert m.bench_words(other) is None, other
    assert m.bench_words("bench-words-100000000") is None
    assert m.bench_words("my-bench-words-5") is None


@pytest.mark.parametrize("n", [1, 9, 10, 11, 1234])
def test_bench_text_has_n_words_and_splits_into_n_deltas(n: int) -> None:
    text = m.bench_text(n)
    assert len(text.split(" ")) == n
    assert len(m.split_tokens(text)) == n
    assert all(0 < len(word) <= 5 for word in text.split(" "))


def test_the_rule_replaces_the_text_answer_only() -> None:
    (text,) = m.plan({"model": "bench-words-3"}, m.normalize_input("hi"), violations=0)
    assert text == m.MessageOut("the quick brown")
    tools = [{"type": "function", "name": "f"}]
    request = {"model": "bench-words-3", "tools": tools}
    (call,) = m.plan(request, m.normalize_input("go"), violations=0)
    assert isinstance(call, m.FunctionCallOut)


def _sse_events(body: bytes) -> list[dict[str, Any]]:
    events = []
    for block in body.split(b"\n\n"):
        for line in block.split(b"\n"):
            if line.startswith(b"data: ") and line != b"data: [DONE]":
                events.append(json.loads(line[6:]))
    return events


def _check_responses_stream(events: list[dict[str, Any]], n: int) -> None:
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    deltas = [e["delta"] for e in events if e["type"] == "response.output_text.delta"]
    assert len(deltas) == n
    assert "".join(deltas) == m.bench_text(n)
    assert events[-1]["type"] == "response.completed"
    assert events[-1]["response"]["usage"]["output_tokens"] == n


def test_http_stream_has_n_deltas_in_order(server: ResponsesServer) -> None:
    body = {"model": f"bench-words-{LONG}", "input": "x", "stream": True}
    with httpx.Client(timeout=30) as client:
        answer = client.post(f"{server.base_url}/responses", json=body)
        assert answer.status_code == 200
        _check_responses_stream(_sse_events(answer.content), LONG)
        # The same keep-alive connection serves the next request normally.
        again = client.post(f"{server.base_url}/responses", json={**body, "model": "m"})
        assert "Echo: x " in "".join(
            e.get("delta", "") for e in _sse_events(again.content) if e["type"].endswith("delta")
        )


def test_http_json_answer_has_the_words(server: ResponsesServer) -> None:
    body = {"model": "bench-words-1000", "input": "x"}
    answer = httpx.post(f"{server.base_url}/responses", json=body, timeout=30).json()
    assert answer["output"][0]["content"][0]["text"] == m.bench_text(1000)
    assert answer["usage"]["output_tokens"] == 1000


def test_websocket_stream_has_n_frames_in_order_and_chains(server: ResponsesServer) -> None:
    ws = websocket.create_connection(server.ws_url, timeout=30)
    try:
        create = {"type": "response.create", "model": f"bench-words-{LONG}", "store": False}
        ws.send(json.dumps({**create, "input": "x"}))
        events = [json.loads(ws.recv())]
        while events[-1]["type"] != "response.completed":
            events.append(json.loads(ws.recv()))
        _check_responses_stream(events, LONG)
        previous = events[-1]["response"]["id"]
        ws.send(json.dumps({**create, "input": "y", "previous_response_id": previous}))
        second = [json.loads(ws.recv())]
        while second[-1]["type"] not in ("response.completed", "error"):
            second.append(json.loads(ws.recv()))
        _check_responses_stream(second, LONG)
    finally:
        ws.close()
    (first, chained) = server.stats.requests[-2:]
    assert chained.previous_response_id == first.response_id


def test_chat_stream_has_n_content_deltas(server: ResponsesServer) -> None:
    body = {
        "model": "bench-words-5000",
        "messages": [{"role": "user", "content": "x"}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    answer = httpx.post(f"{server.base_url}/chat/completions", json=body, timeout=30)
    chunks = _sse_events(answer.content)
    contents = [
        c["choices"][0]["delta"]["content"]
        for c in chunks
        if c["choices"] and c["choices"][0]["delta"].get("content")
    ]
    assert len(contents) == 5000
    assert "".join(contents) == m.bench_text(5000)
    assert chunks[-1]["usage"]["completion_tokens"] == 5000
    assert answer.content.endswith(b"data: [DONE]\n\n")


def test_rendered_events_are_a_sequence_built_lazily() -> None:
    meta = ResponseMeta("resp_1", 1, {"model": "bench-words-5"})
    acct = Accounting(1, 0, include_encrypted=False, obfuscate=True, max_output_tokens=None)
    events = render_generation(meta, [m.MessageOut(m.bench_text(5))], acct).events
    listed = list(events)
    assert len(events) == len(listed) == 13
    assert events[0]["type"] == "response.created"
    assert events[-1]["type"] == "response.completed"
    assert [e["delta"] for e in events[4:9]] == ["the", " quick", " brown", " fox", " jumps"]
    assert [e["sequence_number"] for e in listed] == list(range(13))
    assert list(events) == listed  # iterating again builds the same events


def test_a_client_dropping_a_long_websocket_stream_leaves_the_server_serving(
    server: ResponsesServer,
) -> None:
    ws = websocket.create_connection(server.ws_url, timeout=30)
    ws.send(json.dumps({"type": "response.create", "model": "bench-words-1000000", "input": "x"}))
    assert json.loads(ws.recv())["type"] == "response.created"
    sock = ws.sock
    assert sock is not None
    sock.shutdown(socket.SHUT_RDWR)  # drop the TCP connection mid-stream, no close frame
    sock.close()
    deadline = time.monotonic() + 30
    while server.stats.requests[-1].status == "pending" and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.stats.requests[-1].status == "disconnected"
    again = websocket.create_connection(server.ws_url, timeout=30)
    try:
        again.send(json.dumps({"type": "response.create", "model": "bench-words-3", "input": "x"}))
        events = [json.loads(again.recv())]
        while events[-1]["type"] != "response.completed":
            events.append(json.loads(again.recv()))
    finally:
        again.close()
    _check_responses_stream(events, 3)
