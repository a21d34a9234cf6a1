"""The local Responses server's protocol semantics over real 127.0.0.1 sockets."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from llmkit.testing import BUSY_CODE, ResponsesServer

Event = dict[str, Any]
END = {"response.completed", "response.incomplete", "response.failed", "error"}
ADD_TOOL = {
    "type": "function",
    "name": "add",
    "description": "Add two integers.",
    "parameters": {
        "type": "object",
        "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
        "required": ["a", "b"],
    },
}


def sse(response: httpx.Response) -> list[Event]:
    """Parse an SSE body, checking that each `event:` line names its `data:` type."""
    events: list[Event] = []
    name: str | None = None
    for line in response.iter_lines():
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            event = json.loads(line[6:])
            assert event["type"] == name
            events.append(event)
    return events


def stream(server: ResponsesServer, body: dict[str, Any]) -> list[Event]:
    with (
        httpx.Client(timeout=10) as client,
        client.stream("POST", f"{server.base_url}/responses", json={**body, "stream": True}) as r,
    ):
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        return sse(r)


def post(server: ResponsesServer, body: Any, **kwargs: Any) -> httpx.Response:
    with httpx.Client(timeout=10) as client:
        if isinstance(body, bytes):
            return client.post(f"{server.base_url}/responses", content=body, **kwargs)
        return client.post(f"{server.base_url}/responses", json=body, **kwargs)


def turn(ws: ClientConnection, body: dict[str, Any]) -> list[Event]:
    """Send one response.create and read until its terminal event (or an error)."""
    ws.send(json.dumps({"type": "response.create", **body}))
    return read_until_end(ws)


def read_until_end(ws: ClientConnection) -> list[Event]:
    events: list[Event] = []
    while True:
        event = json.loads(ws.recv(timeout=5))
        events.append(event)
        if event["type"] in END:
            return events


def text_of(events: list[Event]) -> str:
    response = events[-1]["response"]
    return "".join(
        part["text"]
        for item in response["output"]
        if item["type"] == "message"
        for part in item["content"]
    )


def check_sequence(events: list[Event]) -> None:
    assert [e["sequence_number"] for e in events] == list(range(len(events)))


# -- HTTP -------------------------------------------------------------------------------------
def test_sse_text_stream_has_the_real_shape(server: ResponsesServer) -> None:
    events = stream(server, {"model": "gpt-test", "input": "hello there"})
    check_sequence(events)
    types = [e["type"] for e in events]
    assert types[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert types[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    deltas = [e["delta"] for e in events if e["type"] == "response.output_text.delta"]
    assert len(deltas) > 3
    expected = "Echo: hello there [user=1 assistant=0 tool_outputs=0 items=1]"
    assert "".join(deltas) == expected == text_of(events)
    created = events[0]["response"]
    assert created["id"].startswith("resp_")
    assert created["output"] == [] and created["usage"] is None
    assert created["store"] is True and created["model"] == "gpt-test"
    usage = events[-1]["response"]["usage"]
    assert usage["output_tokens"] == len(deltas)
    assert usage["input_tokens_details"] == {
        "cached_tokens": 0,
        "cache_write_tokens": usage["input_tokens"],
    }
    assert server.stats.generations == 1


def test_json_create_returns_the_response_object(server: ResponsesServer) -> None:
    r = post(server, {"model": "m", "input": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 200
    assert r.headers["x-request-id"].startswith("req_")
    body = r.json()
    assert body["object"] == "response" and body["status"] == "completed"
    assert body["output"][0]["content"][0]["text"].startswith("Echo: hi ")
    fetched = httpx.get(f"{server.base_url}/responses/{body['id']}", timeout=5)
    assert fetched.json()["id"] == body["id"]


def test_http_chaining_uses_the_store(server: ResponsesServer) -> None:
    first = post(server, {"model": "m", "input": "one"}).json()
    second = post(server, {"model": "m", "input": "two", "previous_response_id": first["id"]})
    assert second.status_code == 200
    body = second.json()
    assert "Echo: two [user=2 assistant=1 tool_outputs=0 items=3]" in text_of([{"response": body}])
    assert body["usage"]["input_tokens_details"]["cached_tokens"] > 0
    assert body["previous_response_id"] == first["id"]


def test_http_chaining_from_an_unstored_response_is_not_found(server: ResponsesServer) -> None:
    first = post(server, {"model": "m", "input": "one", "store": False}).json()
    r = post(server, {"model": "m", "input": "two", "previous_response_id": first["id"]})
    assert r.status_code == 400
    assert r.headers["x-request-id"].startswith("req_")
    assert r.json()["error"]["code"] == "previous_response_not_found"
    assert r.json()["error"]["param"] == "previous_response_id"
    assert server.stats.requests[-1].status == "previous_response_not_found"


def test_generate_is_rejected_over_http(server: ResponsesServer) -> None:
    r = post(server, {"model": "m", "input": "x", "generate": False})
    assert r.status_code == 400
    assert r.json() == {
        "error": {
            "message": "Unsupported parameter: generate",
            "type": "invalid_request_error",
            "param": "generate",
            "code": "unsupported_parameter",
        }
    }
    assert server.stats.generations == 0


MISSING = "missing_required_parameter"
BAD_REQUESTS: list[tuple[Any, str | None, str | None]] = [
    (b"{not json", None, None),
    ({"input": "x"}, "model", MISSING),
    ({"model": "m", "input": {"a": 1}}, "input", "invalid_type"),
    ({"model": "m", "input": [3]}, "input[0]", "invalid_type"),
    (
        {"model": "m", "input": [{"role": "robot", "content": "x"}]},
        "input[0].role",
        "invalid_value",
    ),
    ({"model": "m", "input": [{"role": "user"}]}, "input[0].content", MISSING),
    ({"model": "m", "input": [{"type": "function_call_output"}]}, "input[0].call_id", MISSING),
    ({"model": "m", "input": [{"content": "x"}]}, "input[0].type", MISSING),
    ({"model": "m", "tools": [{"type": "function"}]}, "tools[0].name", MISSING),
    ({"model": "m", "tools": [3]}, "tools[0].type", MISSING),
    ({"model": "m", "tools": {}}, "tools", "invalid_type"),
    ({"model": "m", "max_output_tokens": 3}, "max_output_tokens", "integer_below_min_value"),
    ({"model": "m", "stream_id": "lane"}, "stream_id", "unsupported_parameter"),
    ({"model": "m", "background": True}, "background", "invalid_value"),
    ([1, 2], None, "invalid_type"),
]


@pytest.mark.parametrize(("body", "param", "code"), BAD_REQUESTS)
def test_bad_requests_get_real_looking_400s(
    server: ResponsesServer, body: Any, param: str | None, code: str | None
) -> None:
    r = post(server, body)
    assert r.status_code == 400
    assert r.headers["x-request-id"]
    error = r.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert (error["param"], error["code"]) == (param, code)
    assert error["message"]


def test_unknown_paths_are_404_json(server: ResponsesServer) -> None:
    r = httpx.get(f"{server.base_url}/nothing", timeout=5)
    assert r.status_code == 404
    assert r.json()["error"]["message"] == "Invalid URL (GET /v1/nothing)"
    missing = httpx.get(f"{server.base_url}/responses/resp_nope", timeout=5)
    assert missing.status_code == 404


def test_tool_output_without_its_call_is_rejected(server: ResponsesServer) -> None:
    output = {"type": "function_call_output", "call_id": "call_x", "output": "1"}
    r = post(server, {"model": "m", "input": [{"role": "user", "content": "go"}, output]})
    assert r.status_code == 400
    assert "No tool call found" in r.json()["error"]["message"]


def test_api_key_is_enforced_on_http_and_upgrade(server: ResponsesServer) -> None:
    server.api_key = "sk-right"
    r = post(server, {"model": "m", "input": "x"})
    assert r.status_code == 401
    assert r.headers["x-request-id"]
    assert r.json()["error"]["code"] == "invalid_api_key"
    assert r.json()["error"]["param"] is None
    wrong = post(server, {"model": "m", "input": "x"}, headers={"Authorization": "Bearer no"})
    assert wrong.status_code == 401
    ok = post(server, {"model": "m", "input": "x"}, headers={"Authorization": "Bearer sk-right"})
    assert ok.status_code == 200
    with pytest.raises(InvalidStatus) as info:
        connect(server.ws_url, open_timeout=5).close()
    assert info.value.response.status_code == 401
    assert json.loads(info.value.response.body or b"")["error"]["code"] == "invalid_api_key"
    headers = {"Authorization": "Bearer sk-right"}
    with connect(server.ws_url, additional_headers=headers, open_timeout=5) as ws:
        assert turn(ws, {"model": "m", "input": "x"})[-1]["type"] == "response.completed"


# -- WebSocket ------------------------------------------------------------------------------------
def test_ws_chained_turns_use_the_connection_cache(server: ResponsesServer) -> None:
    with connect(server.ws_url, open_timeout=5) as ws:
        first = turn(ws, {"model": "m", "input": "one", "store": False})
        check_sequence(first)
        rid = first[-1]["response"]["id"]
        second = turn(
            ws, {"model": "m", "input": "two", "store": False, "previous_response_id": rid}
        )
    assert text_of(second) == "Echo: two [user=2 assistant=1 tool_outputs=0 items=3]"
    usage = second[-1]["response"]["usage"]
    assert 0 < usage["input_tokens_details"]["cached_tokens"] < usage["input_tokens"]
    records = server.stats.requests
    assert [r.previous_response_id for r in records] == [None, rid]
    assert all(
        r.transport == "websocket" and r.connection_id == records[0].connection_id for r in records
    )
    with connect(server.ws_url, open_timeout=5) as ws2:
        lost = turn(
            ws2, {"model": "m", "input": "three", "store": False, "previous_response_id": rid}
        )
    assert lost == [
        {
            "type": "error",
            "status": 400,
            "error": {
                "type": "invalid_request_error",
                "code": "previous_response_not_found",
                "message": f"Previous response with id '{rid}' not found.",
                "param": "previous_response_id",
            },
        }
    ]
    assert server.stats.connections_opened == 2


def test_ws_store_true_chains_across_connections(server: ResponsesServer) -> None:
    with connect(server.ws_url, open_timeout=5) as ws:
        rid = turn(ws, {"model": "m", "input": "one"})[-1]["response"]["id"]
    with connect(server.ws_url, open_timeout=5) as ws:
        events = turn(ws, {"model": "m", "input": "two", "previous_response_id": rid})
    assert text_of(events).startswith("Echo: two [user=2 assistant=1")


def test_ws_only_the_most_recent_response_is_cached(server: ResponsesServer) -> None:
    with connect(server.ws_url, open_timeout=5) as ws:
        old = turn(ws, {"model": "m", "input": "a", "store": False})[-1]["response"]["id"]
        turn(ws, {"model": "m", "input": "b", "store": False})
        events = turn(ws, {"model": "m", "input": "c", "store": False, "previous_response_id": old})
    assert events[-1]["error"]["code"] == "previous_response_not_found"


def test_ws_a_missing_previous_response_leaves_the_socket_open(server: ResponsesServer) -> None:
    # The error is request-scoped (PROTOCOL.md §3.1, §6.2): the same socket takes the
    # full input next, as a client recovering from the miss sends it.
    with connect(server.ws_url, open_timeout=5) as ws:
        first = turn(ws, {"model": "m", "input": "a", "store": False})[-1]["response"]
        turn(ws, {"model": "m", "input": "b", "store": False})
        missed = turn(
            ws, {"model": "m", "input": "c", "store": False, "previous_response_id": first["id"]}
        )
        assert missed[-1]["error"]["code"] == "previous_response_not_found"
        history = [
            {"role": "user", "content": "a"},
            *first["output"],
            {"role": "user", "content": "c"},
        ]
        resent = turn(ws, {"model": "m", "input": history, "store": False})
    assert resent[-1]["type"] == "response.completed"
    assert text_of(resent).startswith("Echo: c [user=2 assistant=1")
    assert server.stats.connections_opened == 1
    assert len({r.connection_id for r in server.stats.requests}) == 1
    assert len(server.stats.requests) == 4


def test_second_create_while_busy_is_an_error(server: ResponsesServer) -> None:
    # A server without lanes that refuses the second create (PROTOCOL.md §5.4); the
    # default server queues it on the default lane (test_server_lanes.py).
    server.ws_lanes, server.ws_when_busy = "ignore", "error"
    server.token_delay = 0.02
    with connect(server.ws_url, open_timeout=5) as ws:
        ws.send(json.dumps({"type": "response.create", "model": "m", "input": "first"}))
        assert json.loads(ws.recv(timeout=5))["type"] == "response.created"
        ws.send(json.dumps({"type": "response.create", "model": "m", "input": "second"}))
        events = read_until_end(ws)
        busy = [e for e in events if e["type"] == "error"]
        assert busy and busy[0]["error"]["code"] == BUSY_CODE and busy[0]["status"] == 400
        if events[-1]["type"] == "error":
            events = read_until_end(ws)
        assert events[-1]["type"] == "response.completed"
        assert text_of(events).startswith("Echo: first")
    assert server.stats.generations == 1
    assert [r.status for r in server.stats.requests] == ["completed", BUSY_CODE]


def test_warmup_returns_an_empty_completed_response(server: ResponsesServer) -> None:
    tools = [ADD_TOOL]
    with connect(server.ws_url, open_timeout=5) as ws:
        warm = turn(
            ws,
            {
                "model": "m",
                "input": "[steps=1] add",
                "tools": tools,
                "generate": False,
                "store": False,
            },
        )
        assert [e["type"] for e in warm] == ["response.created", "response.completed"]
        done = warm[-1]["response"]
        assert done["id"].startswith("resp_") and done["output"] == []
        assert done["usage"]["output_tokens"] == 0 and done["usage"]["input_tokens"] > 0
        events = turn(
            ws,
            {
                "model": "m",
                "input": [],
                "tools": tools,
                "store": False,
                "previous_response_id": done["id"],
            },
        )
    call = events[-1]["response"]["output"][0]
    assert call["type"] == "function_call" and json.loads(call["arguments"]) == {"a": 0, "b": 1}
    assert events[-1]["response"]["usage"]["input_tokens_details"]["cached_tokens"] > 0
    assert (server.stats.warmups, server.stats.generations) == (1, 1)
    assert [r.generate for r in server.stats.requests] == [False, True]


def test_add_loop_of_thirty_steps_over_websocket(server: ResponsesServer) -> None:
    body = {"model": "m", "tools": [ADD_TOOL], "store": False}
    with connect(server.ws_url, open_timeout=5) as ws:
        events = turn(ws, {**body, "input": "Sum it up [steps=30]"})
        for _ in range(30):
            response = events[-1]["response"]
            calls = [i for i in response["output"] if i["type"] == "function_call"]
            if not calls:
                break
            args = json.loads(calls[0]["arguments"])
            output = {
                "type": "function_call_output",
                "call_id": calls[0]["call_id"],
                "output": str(args["a"] + args["b"]),
            }
            events = turn(ws, {**body, "input": [output], "previous_response_id": response["id"]})
    assert text_of(events).startswith("The answer is 465. [user=1 assistant=0 tool_outputs=30")
    assert server.stats.generations == 31
    assert server.stats.context_violations == 0


def test_add_loop_with_full_resend_over_http(server: ResponsesServer) -> None:
    items: list[dict[str, Any]] = [{"role": "user", "content": "[steps=4] add"}]
    for _ in range(5):
        response = post(
            server, {"model": "m", "tools": [ADD_TOOL], "input": items, "store": False}
        ).json()
        calls = [i for i in response["output"] if i["type"] == "function_call"]
        if not calls:
            break
        args = json.loads(calls[0]["arguments"])
        items += [
            calls[0],
            {
                "type": "function_call_output",
                "call_id": calls[0]["call_id"],
                "output": str(args["a"] + args["b"]),
            },
        ]
    assert text_of([{"response": response}]).startswith("The answer is 10. ")


def test_duplicated_items_are_a_violation_and_change_the_answer(server: ResponsesServer) -> None:
    body = {"model": "m", "tools": [ADD_TOOL], "store": False}
    with connect(server.ws_url, open_timeout=5) as ws:
        first = turn(ws, {**body, "input": "[steps=1] add"})[-1]["response"]
        call = first["output"][0]
        output = {"type": "function_call_output", "call_id": call["call_id"], "output": "1"}
        good = turn(ws, {**body, "input": [output], "previous_response_id": first["id"]})
    with connect(server.ws_url, open_timeout=5) as ws:
        first = turn(ws, {**body, "input": "[steps=1] add"})[-1]["response"]
        call = first["output"][0]
        output = {"type": "function_call_output", "call_id": call["call_id"], "output": "1"}
        # The previous output (the function_call) is resent although the server has it.
        bad = turn(ws, {**body, "input": [call, output], "previous_response_id": first["id"]})
    assert text_of(good) == "The answer is 1. [user=1 assistant=0 tool_outputs=1 items=3]"
    assert (
        text_of(bad) == "The answer is 1. [user=1 assistant=0 tool_outputs=1 items=4 violations=1]"
    )
    assert server.stats.context_violations == 1
    assert [r.violations for r in server.stats.requests] == [0, 0, 0, 1]
    conn = server.stats.requests[-1].connection_id
    assert conn is not None and server.stats.connection(conn).context_violations == 1


def test_reasoning_items_and_encrypted_content(server: ResponsesServer) -> None:
    body = {
        "model": "m",
        "reasoning": {"effort": "low", "summary": "auto"},
        "store": False,
        "include": ["reasoning.encrypted_content"],
    }
    events = stream(server, {**body, "input": "think"})
    types = [e["type"] for e in events]
    for kind in ("part.added", "text.delta", "text.done", "part.done"):
        assert f"response.reasoning_summary_{kind}" in types
    response = events[-1]["response"]
    reasoning, message = response["output"]
    assert reasoning["type"] == "reasoning" and reasoning["encrypted_content"].startswith("gAAAAAB")
    assert reasoning["summary"][0]["text"].startswith("**Planning**")
    assert response["usage"]["output_tokens_details"]["reasoning_tokens"] > 0
    history = [{"role": "user", "content": "think"}, reasoning, message]
    replay = post(server, {**body, "input": [*history, {"role": "user", "content": "more"}]})
    assert replay.status_code == 200
    forged = {**reasoning, "encrypted_content": reasoning["encrypted_content"][:-8] + "AAAAAAAA"}
    bad = post(server, {**body, "input": [history[0], forged, message]})
    assert bad.json()["error"]["code"] == "invalid_encrypted_content"
    stripped = {k: v for k, v in reasoning.items() if k != "encrypted_content"}
    missing = post(server, {**body, "input": [history[0], stripped, message]})
    assert missing.status_code == 400 and "not persisted" in missing.json()["error"]["message"]
    plain = post(server, {"model": "o-reasoner", "input": "x"}).json()
    assert (
        plain["output"][0]["type"] == "reasoning" and "encrypted_content" not in plain["output"][0]
    )
    stored = post(
        server, {"model": "m", "input": [history[0], {**stripped, "id": plain["output"][0]["id"]}]}
    )
    assert stored.status_code == 200


def test_max_output_tokens_ends_incomplete(server: ResponsesServer) -> None:
    with connect(server.ws_url, open_timeout=5) as ws:
        text = " ".join(["word"] * 30)
        events = turn(ws, {"model": "m", "input": text, "max_output_tokens": 16, "store": False})
        response = events[-1]["response"]
        assert events[-1]["type"] == "response.incomplete"
        assert response["incomplete_details"] == {"reason": "max_output_tokens"}
        assert response["output"][0]["status"] == "incomplete"
        assert response["usage"]["output_tokens"] == 16
        follow = turn(
            ws,
            {
                "model": "m",
                "input": "go on",
                "store": False,
                "previous_response_id": response["id"],
            },
        )
    assert follow[-1]["type"] == "response.completed"


def test_keepalive_frames_while_waiting(server: ResponsesServer) -> None:
    server.keepalive_interval = 0.05
    server.ttft = 0.3
    with connect(server.ws_url, open_timeout=5) as ws:
        events = turn(ws, {"model": "m", "input": "x"})
    check_sequence(events)
    keepalives = [e for e in events if e["type"] == "keepalive"]
    assert len(keepalives) >= 3
    assert set(keepalives[0]) == {"type", "sequence_number"}


def test_connection_age_limit(server: ResponsesServer) -> None:
    server.max_connection_age = 0.2
    with connect(server.ws_url, open_timeout=5) as ws:
        assert turn(ws, {"model": "m", "input": "x"})[-1]["type"] == "response.completed"
        time.sleep(0.3)
        events = turn(ws, {"model": "m", "input": "y"})
        assert events[-1]["error"]["code"] == "websocket_connection_limit_reached"
        assert events[-1]["status"] == 400
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=5)
    assert server.stats.generations == 1


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (b"\x00binary", "invalid_json"),
        ("not json", "invalid_json"),
        ("[1]", "invalid_json"),
        ('{"type": "response.cancel"}', "invalid_value"),
        ('{"type": "response.create", "model": "m", "stream_id": "a b"}', "invalid_stream_id"),
        ('{"type": "response.create", "model": "m", "background": true}', "invalid_value"),
        ('{"type": "response.create", "model": "m", "generate": "no"}', "invalid_value"),
        ('{"type": "response.create", "input": "x"}', "missing_required_parameter"),
    ],
)
def test_bad_frames_get_error_frames(
    server: ResponsesServer, frame: str | bytes, code: str
) -> None:
    with connect(server.ws_url, open_timeout=5) as ws:
        ws.send(frame)
        error = json.loads(ws.recv(timeout=5))
        assert error["type"] == "error" and error["error"]["code"] == code
        # The connection stays usable.
        assert turn(ws, {"model": "m", "input": "x"})[-1]["type"] == "response.completed"


def test_failed_validation_of_a_continuation_evicts_the_head(server: ResponsesServer) -> None:
    with connect(server.ws_url, open_timeout=5) as ws:
        rid = turn(ws, {"model": "m", "input": "a", "store": False})[-1]["response"]["id"]
        bad = turn(
            ws,
            {
                "model": "m",
                "input": [{"role": "x", "content": "?"}],
                "store": False,
                "previous_response_id": rid,
            },
        )
        assert bad[-1]["error"]["code"] == "invalid_value"
        again = turn(ws, {"model": "m", "input": "b", "store": False, "previous_response_id": rid})
    assert again[-1]["error"]["code"] == "previous_response_not_found"


def test_stats_per_request_and_connection(server: ResponsesServer) -> None:
    frame = json.dumps(
        {
            "type": "response.create",
            "model": "m",
            "input": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}],
        }
    )
    with connect(server.ws_url, open_timeout=5) as ws:
        ws.send(frame)
        events = read_until_end(ws)
    record = server.stats.requests[0]
    assert record.bytes_received == len(frame.encode())
    assert record.input_items == 2
    assert record.response_id == events[-1]["response"]["id"]
    assert record.status == "completed"
    assert record.connection_id is not None
    view = server.stats.connection(record.connection_id)
    assert view.generations == 1 and view.requests == (record,)
    assert view.bytes_received == len(frame.encode())
    assert [c.connection_id for c in server.stats.connections] == [record.connection_id]
    with pytest.raises(KeyError):
        server.stats.connection(10**6)
