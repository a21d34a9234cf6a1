"""Fault injection of the local Responses server, each fault observed from a real client."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidMessage, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from llmkit.testing import ResponsesServer

Event = dict[str, Any]
END = {"response.completed", "response.incomplete", "response.failed", "error"}
RECORDED = Path(__file__).parent / "data" / "recorded"
TOOL_STREAM = (
    RECORDED
    / "charmbracelet-fantasy"
    / ("TestOpenAIResponsesCommon__openai-gpt-5__tool_streaming.i0.sse")
)


def turn(ws: ClientConnection, body: dict[str, Any]) -> list[Event]:
    ws.send(json.dumps({"type": "response.create", **body}))
    events: list[Event] = []
    while True:
        event = json.loads(ws.recv(timeout=5))
        events.append(event)
        if event["type"] in END:
            return events


def sse_events(server: ResponsesServer, body: dict[str, Any]) -> list[Event]:
    with (
        httpx.Client(timeout=10) as client,
        client.stream("POST", f"{server.base_url}/responses", json={**body, "stream": True}) as r,
    ):
        assert r.status_code == 200
        return [json.loads(line[6:]) for line in r.iter_lines() if line.startswith("data: ")]


# -- upgrades ----------------------------------------------------------------------------------
def test_reject_upgrades_with_a_status(server: ResponsesServer) -> None:
    server.faults.reject_upgrades(n=2, status=503)
    for _ in range(2):
        with pytest.raises(InvalidStatus) as info:
            connect(server.ws_url, open_timeout=5).close()
        assert info.value.response.status_code == 503
        assert info.value.response.headers["x-request-id"].startswith("req_")
        assert json.loads(info.value.response.body or b"")["error"]["type"] == "server_error"
    with connect(server.ws_url, open_timeout=5) as ws:
        assert turn(ws, {"model": "m", "input": "x"})[-1]["type"] == "response.completed"
    assert server.stats.connections_opened == 1


def test_reject_upgrade_by_dropping_the_socket(server: ResponsesServer) -> None:
    server.faults.reject_upgrades(status=None)
    with pytest.raises((InvalidMessage, ConnectionError, EOFError)):
        connect(server.ws_url, open_timeout=5).close()
    with connect(server.ws_url, open_timeout=5) as ws:
        assert turn(ws, {"model": "m", "input": "x"})[-1]["type"] == "response.completed"


def test_reject_upgrades_requires_a_positive_count(server: ResponsesServer) -> None:
    with pytest.raises(ValueError, match="n must be"):
        server.faults.reject_upgrades(n=0)
    with pytest.raises(ValueError, match="n must be"):
        server.faults.fail_next(n=0)


# -- dropped streams ----------------------------------------------------------------------------
def test_drop_after_on_websocket_closes_without_a_close_frame(server: ResponsesServer) -> None:
    server.faults.drop_after(3)
    with connect(server.ws_url, open_timeout=5) as ws:
        ws.send(json.dumps({"type": "response.create", "model": "m", "input": "x"}))
        received = [json.loads(ws.recv(timeout=5)) for _ in range(3)]
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(timeout=5)
        assert info.value.rcvd is None  # no close frame: an abnormal closure
    assert [e["sequence_number"] for e in received] == [0, 1, 2]
    assert server.stats.requests[0].status == "dropped"
    assert server.stats.generations == 1
    with connect(server.ws_url, open_timeout=5) as ws:  # only one response was affected
        assert turn(ws, {"model": "m", "input": "x"})[-1]["type"] == "response.completed"


def test_drop_after_on_http_aborts_the_body(server: ResponsesServer) -> None:
    server.faults.drop_after(4)
    seen: list[str] = []
    with (
        pytest.raises(httpx.RemoteProtocolError),
        httpx.Client(timeout=10) as client,
        client.stream(
            "POST",
            f"{server.base_url}/responses",
            json={"model": "m", "input": "x", "stream": True},
        ) as r,
    ):
        seen.extend(line for line in r.iter_lines() if line.startswith("data: "))
    assert len(seen) == 4
    server.faults.drop_after(0)
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.post(f"{server.base_url}/responses", json={"model": "m", "input": "x"}, timeout=5)
    assert [r.status for r in server.stats.requests] == ["dropped", "dropped"]


# -- failures and errors ------------------------------------------------------------------------
def test_fail_next_emits_response_failed_and_evicts_the_head(server: ResponsesServer) -> None:
    with connect(server.ws_url, open_timeout=5) as ws:
        rid = turn(ws, {"model": "m", "input": "a", "store": False})[-1]["response"]["id"]
        server.faults.fail_next(code="rate_limit_exceeded", message="Slow down.")
        failed = turn(ws, {"model": "m", "input": "b", "store": False, "previous_response_id": rid})
        retry = turn(ws, {"model": "m", "input": "b", "store": False, "previous_response_id": rid})
    assert [e["type"] for e in failed] == [
        "response.created",
        "response.in_progress",
        "response.failed",
    ]
    assert failed[-1]["response"]["error"] == {
        "code": "rate_limit_exceeded",
        "message": "Slow down.",
    }
    assert failed[-1]["response"]["status"] == "failed"
    assert retry[-1]["error"]["code"] == "previous_response_not_found"
    assert server.stats.generations == 2  # the failed run is billable
    assert [r.status for r in server.stats.requests] == [
        "completed",
        "failed",
        "previous_response_not_found",
    ]


@pytest.mark.parametrize("shape", ["nested", "flat"])
def test_error_next_on_websocket(server: ResponsesServer, shape: Any) -> None:
    server.faults.error_next(
        code="rate_limit_exceeded", message="Too many.", status=429, shape=shape
    )
    with connect(server.ws_url, open_timeout=5) as ws:
        events = turn(ws, {"model": "m", "input": "x"})
        assert turn(ws, {"model": "m", "input": "x"})[-1]["type"] == "response.completed"
    assert len(events) == 1
    if shape == "nested":
        assert events[0] == {
            "type": "error",
            "status": 429,
            "error": {
                "type": "invalid_request_error",
                "code": "rate_limit_exceeded",
                "message": "Too many.",
                "param": None,
            },
        }
    else:
        assert events[0] == {
            "type": "error",
            "code": "rate_limit_exceeded",
            "message": "Too many.",
            "param": None,
            "sequence_number": 0,
        }
    assert server.stats.generations == 1
    assert server.stats.requests[0].status == "rate_limit_exceeded"


def test_error_next_on_http(server: ResponsesServer) -> None:
    server.faults.error_next(code="server_error", status=500, n=2)
    events = sse_events(server, {"model": "m", "input": "x"})
    assert events == [
        {
            "type": "error",
            "status": 500,
            "error": {
                "type": "server_error",
                "code": "server_error",
                "message": "The server had an error while processing your request.",
                "param": None,
            },
            "sequence_number": 0,
        }
    ]
    r = httpx.post(f"{server.base_url}/responses", json={"model": "m", "input": "x"}, timeout=5)
    assert r.status_code == 500 and r.json()["error"]["code"] == "server_error"
    assert server.stats.generations == 0


def test_response_faults_skip_warmups_unless_asked(server: ResponsesServer) -> None:
    server.faults.fail_next()
    with connect(server.ws_url, open_timeout=5) as ws:
        warm = turn(ws, {"model": "m", "input": "x", "generate": False})
        assert warm[-1]["type"] == "response.completed"
        assert turn(ws, {"model": "m", "input": "x"})[-1]["type"] == "response.failed"
        server.faults.error_next(code="boom", include_warmups=True)
        assert turn(ws, {"model": "m", "input": "x", "generate": False})[-1]["type"] == "error"


# -- connection-level faults -----------------------------------------------------------------------
def test_close_idle_closes_only_idle_connections(server: ResponsesServer) -> None:
    server.token_delay = 0.05
    with (
        connect(server.ws_url, open_timeout=5) as idle,
        connect(server.ws_url, open_timeout=5) as busy,
    ):
        busy.send(json.dumps({"type": "response.create", "model": "m", "input": "a b c d e f"}))
        assert json.loads(busy.recv(timeout=5))["type"] == "response.created"
        idle.send(
            json.dumps({"type": "response.create", "model": "m", "input": "x", "generate": False})
        )
        while json.loads(idle.recv(timeout=5))["type"] != "response.completed":
            pass
        deadline = time.monotonic() + 5
        while server.stats.requests[-1].status != "completed" and time.monotonic() < deadline:
            time.sleep(0.01)
        assert server.faults.close_idle() == 1
        with pytest.raises(ConnectionClosed) as info:
            idle.recv(timeout=5)
        assert info.value.rcvd is not None and info.value.rcvd.code == 1001
        while (event := json.loads(busy.recv(timeout=5)))["type"] not in END:
            pass
        assert event["type"] == "response.completed"


def test_max_frame_size_closes_with_1009(server: ResponsesServer) -> None:
    server.faults.max_frame_size = 1000
    with connect(server.ws_url, open_timeout=5) as ws:
        ws.send(json.dumps({"type": "response.create", "model": "m", "input": "x" * 2000}))
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(timeout=5)
    assert info.value.rcvd is not None and info.value.rcvd.code == 1009
    assert server.stats.generations == 0
    assert server.stats.requests[0].status == "1009"


def test_unknown_events_are_interleaved(server: ResponsesServer) -> None:
    server.faults.unknown_events = True
    with connect(server.ws_url, open_timeout=5) as ws:
        events = turn(ws, {"model": "m", "input": "hello"})
    kinds = [e["type"] for e in events]
    assert kinds.count("response.future_thing") == len(events) // 2
    assert kinds[-1] == "response.completed" and kinds[-2] == "response.future_thing"
    assert [e["sequence_number"] for e in events] == list(range(len(events)))


def test_slow_applies_to_the_next_response_only(server: ResponsesServer) -> None:
    server.faults.slow(0.03)
    with connect(server.ws_url, open_timeout=5) as ws:
        start = time.monotonic()
        slow = turn(ws, {"model": "m", "input": "one two three four five six"})
        slow_time = time.monotonic() - start
        start = time.monotonic()
        turn(ws, {"model": "m", "input": "one two three four five six"})
        fast_time = time.monotonic() - start
    deltas = sum(e["type"].endswith(".delta") for e in slow)
    assert slow_time >= 0.03 * deltas * 0.9
    assert fast_time < slow_time


# -- replay ----------------------------------------------------------------------------
def test_replay_over_http_is_verbatim(server: ResponsesServer) -> None:
    server.replay_next(TOOL_STREAM)
    with httpx.Client(timeout=10) as client:
        r = client.post(
            f"{server.base_url}/responses", json={"model": "m", "input": "x", "stream": True}
        )
    assert r.content == TOOL_STREAM.read_bytes()
    assert server.stats.generations == 1
    assert server.stats.requests[0].status == "completed"


def test_replay_over_websocket_chains_from_the_recorded_response(server: ResponsesServer) -> None:
    body = TOOL_STREAM.read_bytes()
    payloads = [line[6:] for line in body.decode().split("\n") if line.startswith("data: ")]
    server.replay_next(body)
    with connect(server.ws_url, open_timeout=5) as ws:
        ws.send(json.dumps({"type": "response.create", "model": "m", "input": "x", "store": False}))
        frames = [ws.recv(timeout=5) for _ in payloads]
        assert frames == payloads
        recorded = json.loads(payloads[-1])["response"]
        call = recorded["output"][-1]
        output = {"type": "function_call_output", "call_id": call["call_id"], "output": "sunny"}
        follow = turn(
            ws,
            {
                "model": "m",
                "input": [output],
                "store": False,
                "previous_response_id": recorded["id"],
            },
        )
    assert follow[-1]["type"] == "response.completed"
    text = follow[-1]["response"]["output"][0]["content"][0]["text"]
    assert text.startswith("The answer is sunny.")


def test_replay_of_an_error_stream(server: ResponsesServer) -> None:
    server.replay_next(
        (RECORDED / "vercel-ai" / "openai-responses__openai-error.1.sse").read_bytes()
    )
    with connect(server.ws_url, open_timeout=5) as ws:
        events = turn(ws, {"model": "m", "input": "x"})
        assert events[-1]["type"] == "error"
        assert json.loads(ws.recv(timeout=5))["type"] == "response.failed"
