"""The local server's gateway modes (`llmkit.testing._gateway`), seen from a raw client."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from test_server_faults import sse_events, turn
from websockets.exceptions import ConnectionClosedOK
from websockets.sync.client import connect

from llmkit.testing import ResponsesServer

ADD = {
    "type": "function",
    "name": "add",
    "parameters": {
        "type": "object",
        "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
    },
}


# -- fake warm-ups ---------------------------------------------------------------------------------
def test_a_fake_warmup_is_answered_without_keeping_its_input(server: ResponsesServer) -> None:
    server.ws_fake_warmups = True
    with connect(server.ws_url, open_timeout=5) as ws:
        body = {"model": "m", "input": "hello there"}
        warm = turn(ws, {**body, "generate": False})
        assert [e["type"] for e in warm] == ["response.created", "response.completed"]
        done = warm[-1]["response"]
        assert done["id"].startswith("resp_warmup_") and done["status"] == "completed"
        assert done["output"] == [] and done["usage"]["input_tokens"] == 0
        assert done["usage"]["output_tokens"] == 0
        chained = turn(ws, {"model": "m", "input": [], "previous_response_id": done["id"]})
        # The model saw an empty conversation: the wrong answer a client must not accept.
        text = chained[-1]["response"]["output"][0]["content"][0]["text"]
        assert text == "Echo:  [user=0 assistant=0 tool_outputs=0 items=0]"
        full = turn(ws, body)
        text = full[-1]["response"]["output"][0]["content"][0]["text"]
        assert text == "Echo: hello there [user=1 assistant=0 tool_outputs=0 items=1]"
    records = server.stats.requests
    assert [r.generate for r in records] == [False, True, True]
    assert records[0].response_id == done["id"] and records[0].status == "completed"
    assert records[1].previous_response_id == done["id"]  # as the client sent it
    assert server.stats.warmups == 1 and server.stats.generations == 2


def test_a_fake_warmup_of_a_tool_call_leaves_the_tool_loop_without_context(
    server: ResponsesServer,
) -> None:
    server.ws_fake_warmups = True
    with connect(server.ws_url, open_timeout=5) as ws:
        body = {"model": "m", "input": "add [steps=2]", "tools": [ADD]}
        warm = turn(ws, {**body, "generate": False})[-1]["response"]["id"]
        chained = turn(ws, {**body, "input": [], "previous_response_id": warm})
    call = chained[-1]["response"]["output"][0]
    assert call["type"] == "function_call" and json.loads(call["arguments"]) == {"a": 0, "b": 1}


def test_without_the_mode_a_warmup_is_real(server: ResponsesServer) -> None:
    with connect(server.ws_url, open_timeout=5) as ws:
        warm = turn(ws, {"model": "m", "input": "hi", "generate": False})[-1]["response"]
        assert not warm["id"].startswith("resp_warmup_")
        assert warm["usage"]["input_tokens"] > 0
        chained = turn(ws, {"model": "m", "input": [], "previous_response_id": warm["id"]})
    text = chained[-1]["response"]["output"][0]["content"][0]["text"]
    assert text == "Echo: hi [user=1 assistant=0 tool_outputs=0 items=1]"


def test_the_setting_is_a_constructor_argument() -> None:
    with ResponsesServer(ws_fake_warmups=True) as server:
        assert server.ws_fake_warmups is True


# -- error frames in every shape -------------------------------------------------------------------
SLOW = {"type": "invalid_request_error", "code": "rate_limit_exceeded", "message": "Slow."}
SHAPES: list[tuple[dict[str, Any], dict[str, Any]]] = [
    (  # no status: the error type of an unknown (server-side) failure
        {"shape": "nested", "status": None},
        {"type": "error", "error": {**SLOW, "type": "server_error", "param": None}},
    ),
    (
        {"shape": "status_code", "status": 429},
        {"type": "error", "status_code": 429, "error": {**SLOW, "param": None}},
    ),
    (  # no code at all
        {"shape": "nested", "status": 429, "code": None},
        {
            "type": "error",
            "status": 429,
            "error": {"type": "invalid_request_error", "message": "Slow.", "param": None},
        },
    ),
    ({"shape": "string", "status": None}, {"type": "error", "error": "Slow."}),
    ({"shape": "string", "status": 401}, {"type": "error", "error": "Slow.", "status": 401}),
    (
        {"shape": "flat", "code": None},
        {"type": "error", "message": "Slow.", "param": None, "sequence_number": 0},
    ),
]


@pytest.mark.parametrize(("arm", "frame"), SHAPES)
def test_error_frames_in_gateway_shapes(
    server: ResponsesServer, arm: dict[str, Any], frame: dict[str, Any]
) -> None:
    server.faults.error_next(**{"code": "rate_limit_exceeded", "message": "Slow.", **arm})
    with connect(server.ws_url, open_timeout=5) as ws:
        events = turn(ws, {"model": "m", "input": "x"})
        assert turn(ws, {"model": "m", "input": "x"})[-1]["type"] == "response.completed"
    assert events == [frame]
    assert server.stats.requests[0].status != "completed"
    assert server.stats.generations == 1


def test_gateway_shapes_over_http(server: ResponsesServer) -> None:
    server.faults.error_next(code=None, message="Nope.", status=None, shape="string", n=2)
    assert sse_events(server, {"model": "m", "input": "x"}) == [{"type": "error", "error": "Nope."}]
    r = httpx.post(f"{server.base_url}/responses", json={"model": "m", "input": "x"}, timeout=5)
    assert r.status_code == 500 and r.json()["error"]["message"] == "Nope."
    assert server.stats.generations == 0


# -- a close with no event -------------------------------------------------------------------------
def test_close_on_create_closes_cleanly_before_any_event(server: ResponsesServer) -> None:
    server.faults.close_on_create(n=2, code=1000, reason="not enabled")
    for _ in range(2):
        with connect(server.ws_url, open_timeout=5) as ws:
            ws.send(json.dumps({"type": "response.create", "model": "m", "input": "x"}))
            with pytest.raises(ConnectionClosedOK) as info:
                ws.recv(timeout=5)
            assert info.value.rcvd is not None
            assert (info.value.rcvd.code, info.value.rcvd.reason) == (1000, "not enabled")
    with connect(server.ws_url, open_timeout=5) as ws:
        assert turn(ws, {"model": "m", "input": "x"})[-1]["type"] == "response.completed"
    assert [r.status for r in server.stats.requests] == ["closed", "closed", "completed"]
    assert server.stats.generations == 1


def test_close_on_create_spares_warmups_and_http_unless_asked(server: ResponsesServer) -> None:
    server.faults.close_on_create()
    assert sse_events(server, {"model": "m", "input": "x"})[-1]["type"] == "response.completed"
    with connect(server.ws_url, open_timeout=5) as ws:
        warm = turn(ws, {"model": "m", "input": "x", "generate": False})
        assert warm[-1]["type"] == "response.completed"
        ws.send(json.dumps({"type": "response.create", "model": "m", "input": "x"}))
        with pytest.raises(ConnectionClosedOK):
            ws.recv(timeout=5)
    server.faults.close_on_create(code=1001, include_warmups=True)
    with connect(server.ws_url, open_timeout=5) as ws:
        ws.send(json.dumps({"type": "response.create", "model": "m", "generate": False}))
        with pytest.raises(ConnectionClosedOK) as info:
            ws.recv(timeout=5)
        assert info.value.rcvd is not None and info.value.rcvd.code == 1001
