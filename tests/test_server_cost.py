"""The local server's cost model: time to first token grows with the uncached input.

No timed assertions: each test reads the token counts and the delay the server computed
and recorded (`RequestRecord.uncached_tokens`, ``first_token_delay``), over real
127.0.0.1 sockets, and compares them with the usage the response reported.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from websockets.sync.client import ClientConnection, connect

from llmkit.testing import RequestRecord, ResponsesServer
from llmkit.testing._stream import first_token_delay

Event = dict[str, Any]
TTFT = 0.002
COST = 1e-6  # seconds per uncached token: large enough to see, small enough to be fast


def completed(ws: ClientConnection, lane: str | None = None, **body: Any) -> Event:
    """Send one create and read until its terminal event; the final response."""
    frame: Event = {"type": "response.create", "model": "m", "store": False, **body}
    if lane is not None:
        frame["stream_id"] = lane
    ws.send(json.dumps(frame))
    for _ in range(1000):
        event = json.loads(ws.recv(timeout=10))
        if event["type"] in ("response.completed", "response.failed", "error"):
            assert event["type"] == "response.completed", event
            response: Event = event["response"]
            return response
    raise AssertionError("no terminal event")


def record_of(server: ResponsesServer, response_id: str) -> RequestRecord:
    (record,) = [r for r in server.stats.requests if r.response_id == response_id]
    return record


def usage(response: Event) -> tuple[int, int]:
    """(input tokens, cached tokens) as the response reported them."""
    details = response["usage"]["input_tokens_details"]
    return int(response["usage"]["input_tokens"]), int(details["cached_tokens"])


def delay_of(uncached: int) -> float:
    return TTFT + COST * uncached


@pytest.fixture
def costly(server: ResponsesServer) -> ResponsesServer:
    server.ttft = TTFT
    server.cost_per_input_token = COST
    return server


@pytest.mark.parametrize(
    ("ttft", "cost", "uncached", "expected"),
    [(0.1, 0.001, 50, 0.15), (0.1, 0.0, 5000, 0.1), (0.0, 0.002, 0, 0.0), (0.1, 1.0, -3, 0.1)],
)
def test_first_token_delay_is_ttft_plus_the_prefill(
    ttft: float, cost: float, uncached: int, expected: float
) -> None:
    assert first_token_delay(ttft, cost, uncached) == pytest.approx(expected)


def test_the_setting_is_validated_and_defaults_to_zero() -> None:
    server = ResponsesServer(cost_per_input_token=0.5)
    assert server.cost_per_input_token == 0.5
    assert server.app.core.first_token_delay(10) == 5.0
    server.cost_per_input_token = 0.0
    assert ResponsesServer().cost_per_input_token == 0.0
    with pytest.raises(ValueError, match=">= 0"):
        server.cost_per_input_token = -1.0


def test_a_chained_turn_on_the_socket_processes_only_its_new_items(
    costly: ResponsesServer,
) -> None:
    long_text = "context " * 200
    with connect(costly.ws_url, open_timeout=5) as ws:
        first = completed(ws, input=long_text)
        second = completed(ws, input="and now?", previous_response_id=first["id"])
    one, two = record_of(costly, first["id"]), record_of(costly, second["id"])
    tokens, cached = usage(first)
    assert (one.input_tokens, one.uncached_tokens, cached) == (tokens, tokens, 0)
    assert one.first_token_delay == pytest.approx(delay_of(tokens))
    tokens, cached = usage(second)
    assert cached > one.input_tokens  # the first turn's input and output
    assert (two.input_tokens, two.uncached_tokens) == (tokens, tokens - cached)
    assert two.uncached_tokens < 50 < 200 < one.uncached_tokens
    assert two.first_token_delay == pytest.approx(delay_of(tokens - cached))
    assert costly.stats.input_tokens == one.input_tokens + two.input_tokens
    assert costly.stats.uncached_tokens == one.uncached_tokens + two.uncached_tokens


def test_a_full_resend_processes_everything(costly: ResponsesServer) -> None:
    with connect(costly.ws_url, open_timeout=5) as ws:
        first = completed(ws, input="hello there")
        history = [
            {"role": "user", "content": "hello there"},
            *first["output"],
            {"role": "user", "content": "and now?"},
        ]
        again = completed(ws, input=history)
    record = record_of(costly, again["id"])
    assert record.uncached_tokens == record.input_tokens == usage(again)[0]


def test_a_fork_from_another_lanes_head_is_cached_too(costly: ResponsesServer) -> None:
    with connect(costly.ws_url, open_timeout=5) as ws:
        parent = completed(ws, "a", input="context " * 100)
        child = completed(ws, "b", input="sub-task", previous_response_id=parent["id"])
    record = record_of(costly, child["id"])
    tokens, cached = usage(child)
    assert record.fork and cached > 0
    assert record.uncached_tokens == tokens - cached
    assert costly.stats.uncached_tokens < costly.stats.input_tokens


def test_a_warmup_pays_for_its_input_and_its_follow_up_does_not(
    costly: ResponsesServer,
) -> None:
    with connect(costly.ws_url, open_timeout=5) as ws:
        warm = completed(ws, input="context " * 100, generate=False)
        turn = completed(ws, input="go", previous_response_id=warm["id"])
    warmed, answered = record_of(costly, warm["id"]), record_of(costly, turn["id"])
    assert warmed.uncached_tokens == warmed.input_tokens > 100
    assert answered.uncached_tokens == usage(turn)[0] - usage(turn)[1] < 50


def test_a_response_hydrated_from_the_store_loses_the_latency_benefit(
    costly: ResponsesServer,
) -> None:
    """PROTOCOL.md §3.1: a chain the connection does not hold "works but loses the latency
    benefit": billed as cached, processed in full."""
    with connect(costly.ws_url, open_timeout=5) as ws:
        first = completed(ws, input="context " * 100, store=True)
    with connect(costly.ws_url, open_timeout=5) as ws:  # a new socket: no head held
        later = completed(ws, input="next", store=True, previous_response_id=first["id"])
    http = httpx.post(
        f"{costly.base_url}/responses",
        json={"model": "m", "input": "more", "previous_response_id": first["id"]},
        timeout=10,
    ).json()
    for response in (later, http):
        tokens, cached = usage(response)
        record = record_of(costly, response["id"])
        assert cached > 0
        assert record.uncached_tokens == record.input_tokens == tokens
        assert record.first_token_delay == pytest.approx(delay_of(tokens))


def test_chat_completions_process_every_message(costly: ResponsesServer) -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "hello " * 50}]}
    answer = httpx.post(f"{costly.base_url}/chat/completions", json=body, timeout=10).json()
    (record,) = costly.stats.requests
    assert record.uncached_tokens == record.input_tokens == answer["usage"]["prompt_tokens"]
    assert record.first_token_delay == pytest.approx(delay_of(record.input_tokens))


def test_without_a_cost_the_delay_is_the_fixed_ttft(server: ResponsesServer) -> None:
    server.ttft = TTFT
    with connect(server.ws_url, open_timeout=5) as ws:
        first = completed(ws, input="context " * 100)
    record = record_of(server, first["id"])
    assert record.uncached_tokens > 100
    assert record.first_token_delay == TTFT


def events_until_end(ws: ClientConnection, **body: Any) -> list[Event]:
    ws.send(json.dumps({"type": "response.create", "model": "m", "store": False, **body}))
    events: list[Event] = []
    for _ in range(1000):
        events.append(json.loads(ws.recv(timeout=10)))
        if events[-1]["type"] == "response.completed":
            return events
    raise AssertionError("no terminal event")


def test_the_streams_wait_the_computed_delay(server: ResponsesServer) -> None:
    """The delay reaches the stream: a wait longer than the keepalive interval sends
    `keepalive` events before the first output, a short one none (no clock is read)."""
    server.keepalive_interval = 0.3
    server.cost_per_input_token = 0.001  # ~0.8 s for the long input, ~25 ms chained
    with connect(server.ws_url, open_timeout=5) as ws:
        first = events_until_end(ws, input="context " * 400)
        response_id = first[-1]["response"]["id"]
        chained = events_until_end(ws, input="and now?", previous_response_id=response_id)
    assert record_of(server, response_id).first_token_delay > 2 * server.keepalive_interval
    assert [e["type"] for e in first].count("keepalive") >= 1
    assert [e["type"] for e in chained].count("keepalive") == 0
    server.reset()
    body = {"model": "m", "input": "context " * 200, "stream": True}  # ~0.4 s
    text = httpx.post(f"{server.base_url}/responses", json=body, timeout=10).text
    assert "event: keepalive" in text.split("response.output_text.delta", 1)[0]
