"""The local server's steering (PROTOCOL.md §2.3, §6.3), in raw WebSocket frames over real
127.0.0.1 sockets: what a client sees for each ``response.steer``, and what the server
then holds and bills."""

from __future__ import annotations

import json
from typing import Any

import pytest
from websockets.sync.client import ClientConnection, connect

from llmkit.testing import ResponsesServer
from llmkit.testing._steer import MAX_PENDING_STEERS, SteerRefused, SteerState

Event = dict[str, Any]
END = {"response.completed", "response.incomplete", "response.failed", "error"}
USER = {"type": "message", "role": "user", "content": "tell me a story"}


def create(ws: ClientConnection, lane: str | None = "a", **body: Any) -> None:
    frame: Event = {
        "type": "response.create",
        "model": "m",
        "store": False,
        "input": [USER],
        **body,
    }
    if lane is not None:
        frame["stream_id"] = lane
    ws.send(json.dumps(frame))


def steer(
    ws: ClientConnection, target: Any, value: Any = "Also mention dogs", **extra: Any
) -> None:
    ws.send(
        json.dumps(
            {"type": "response.steer", "previous_response_id": target, "input": value, **extra}
        )
    )


def until(ws: ClientConnection, *kinds: str) -> list[Event]:
    """Every frame up to and including the first of ``kinds``."""
    events: list[Event] = []
    while not events or events[-1]["type"] not in kinds:
        events.append(json.loads(ws.recv(timeout=10)))
    return events


def opened(server: ResponsesServer) -> ClientConnection:
    return connect(server.base_url.replace("http", "ws", 1) + "/responses")


def started(ws: ClientConnection, server: ResponsesServer, **body: Any) -> str:
    """A response held after its first delta (`hold_for_steer`); its id."""
    server.faults.hold_for_steer()
    create(ws, **body)
    events = until(ws, "response.output_text.delta")
    response_id: str = events[0]["response"]["id"]
    return response_id


def test_a_steered_response_stops_at_the_next_delta_and_the_server_continues(
    server: ResponsesServer,
) -> None:
    with opened(server) as ws:
        first = started(ws, server)
        steer(ws, first)
        events = until(ws, "response.incomplete")
        assert [e["type"] for e in events] == [
            "response.steer.accepted",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.incomplete",
        ]
        assert all(e["stream_id"] == "a" for e in events)
        assert events[0]["steer"]["previous_response_id"] == first
        assert events[0]["steer"]["id"].startswith("steer_")
        stopped = events[-1]["response"]
        assert stopped["incomplete_details"] == {"reason": "steered"}
        assert stopped["output"][0]["status"] == "incomplete"
        assert stopped["output"][0]["content"][0]["text"] == "Echo:"
        assert stopped["usage"]["output_tokens"] == 1
        successor = until(ws, "response.completed")
        assert successor[0]["type"] == "response.created"
        assert successor[-1]["response"]["previous_response_id"] == first
        text = successor[-1]["response"]["output"][0]["content"][0]["text"]
        assert text == "Echo: Also mention dogs [user=2 assistant=1 tool_outputs=0 items=3]"
    records = server.stats.requests
    assert [r.status for r in records] == ["incomplete", "completed"]
    assert records[1].successor_of == first and records[1].bytes_received == 0
    assert server.stats.generations == 2 and server.stats.steers == 1


def test_a_steer_after_the_last_stop_point_lets_the_response_complete_then_continue(
    server: ResponsesServer,
) -> None:
    server.faults.hold_for_steer()
    with opened(server) as ws:
        create(
            ws, tools=[{"type": "function", "name": "add", "parameters": {}}], tool_choice="none"
        )
        events = until(ws, "response.output_text.delta")
        steer(
            ws,
            events[0]["response"]["id"],
            [{"role": "user", "content": [{"type": "input_text", "text": "x"}]}],
        )
        events = until(ws, "response.incomplete", "response.completed")
        assert events[-1]["type"] == "response.incomplete"  # a text part: stops at once
        until(ws, "response.completed")


def test_a_steer_during_a_tool_call_is_pending_until_the_tool_results(
    server: ResponsesServer,
) -> None:
    server.record_bodies = True
    server.faults.hold_for_steer()
    tools = [
        {"type": "function", "name": "add", "parameters": {"type": "object", "properties": {}}}
    ]
    with opened(server) as ws:
        create(ws, tools=tools)
        events = until(ws, "response.function_call_arguments.delta")
        first = events[0]["response"]["id"]
        steer(ws, first)
        events = until(ws, "response.steer.pending")
        kinds = [e["type"] for e in events]
        assert kinds[0] == "response.steer.accepted"
        assert kinds[-2:] == ["response.completed", "response.steer.pending"]  # not cut
        call = events[-2]["response"]["output"][0]
        pending = events[-1]
        assert pending["reason"] == "waiting_for_required_input"
        assert pending["required_input"] == [
            {"type": "function_call_output", "call_id": call["call_id"]}
        ]
        assert pending["steer"]["previous_response_id"] == first and pending["stream_id"] == "a"
        output = {"type": "function_call_output", "call_id": call["call_id"], "output": "3"}
        create(ws, previous_response_id=first, input=[output], tools=tools)
        events = until(ws, "response.completed")
    assert server.stats.generations == 2
    # The steer input went before the tool output, as if the client had sent both.
    record = server.stats.requests[1]
    assert record.body is not None and record.body["input"] == [output]
    assert record.violations == 0
    answer = events[-1]["response"]["output"][-1]["content"][0]["text"]
    assert answer == "The answer is 3. [user=2 assistant=0 tool_outputs=1 items=4]"


def test_pending_input_goes_only_to_a_create_on_its_lane(server: ResponsesServer) -> None:
    server.faults.hold_for_steer()
    tools = [
        {"type": "function", "name": "add", "parameters": {"type": "object", "properties": {}}}
    ]
    with opened(server) as ws:
        create(ws, tools=tools)
        first = until(ws, "response.function_call_arguments.delta")[0]["response"]["id"]
        steer(ws, first)
        call = until(ws, "response.steer.pending")[-2]["response"]["output"][0]
        output = {"type": "function_call_output", "call_id": call["call_id"], "output": "3"}
        create(ws, lane="b", previous_response_id=first, input=[output], tools=tools)
        until(ws, "response.completed")
    assert server.stats.requests[1].fork and server.stats.requests[1].violations == 0


@pytest.mark.parametrize(
    ("value", "extra"),
    [
        ([], {}),
        ([{"role": "assistant", "content": "x"}], {}),
        ([{"type": "function_call_output", "call_id": "c", "output": "x"}], {}),
        ([{"role": "user", "content": [{"type": "output_text", "text": "x"}]}], {}),
        ([{"role": "user", "content": []}], {}),
        ([{"role": "user", "content": "x", "name": "bob"}], {}),
        (3, {}),
        ("x", {"stream_id": "a"}),
    ],
)
def test_invalid_steer_input_is_refused_with_the_input(
    server: ResponsesServer, value: Any, extra: dict[str, Any]
) -> None:
    with opened(server) as ws:
        first = started(ws, server)
        steer(ws, first, value, **extra)
        failed = until(ws, "response.steer.failed")[-1]
        assert failed["error"]["code"] == "invalid_input"
        assert failed["error"]["type"] == "invalid_request_error"
        assert failed["steer"] == {"previous_response_id": first, "input": value}
        assert failed["stream_id"] == "a"
        events = until(ws, "response.completed")  # the response goes on as it was
        assert events[-1]["response"]["output"][0]["content"][0]["text"].startswith("Echo: tell me")
    assert server.stats.generations == 1 and server.stats.steers_failed == 1


def test_unknown_ended_and_unsupported_targets(server: ResponsesServer) -> None:
    with opened(server) as ws:
        create(ws, lane=None)
        done = until(ws, "response.completed")[-1]["response"]["id"]
        steer(ws, done)
        failed = until(ws, "response.steer.failed")[-1]
        assert failed["error"]["code"] == "response_already_completed" and "stream_id" not in failed
        steer(ws, "resp_unknown")
        assert until(ws, "response.steer.failed")[-1]["error"]["code"] == "response_not_found"
        server.steering = False
        first = started(ws, server)
        steer(ws, first)
        failed = until(ws, "response.steer.failed")[-1]
        assert failed["error"]["code"] == "steering_not_supported"
        assert "id" not in failed["steer"]
        until(ws, "response.completed")


def test_too_many_pending_steers() -> None:
    state = SteerState()
    for number in range(MAX_PENDING_STEERS):
        state.accept([{"type": "message", "role": "user", "content": str(number)}])
    with pytest.raises(SteerRefused) as caught:
        state.accept([])
    assert caught.value.code == "too_many_pending_steers"
    assert len(state.take()) == MAX_PENDING_STEERS and state.take() == []


def test_steering_is_a_websocket_frame_only(server: ResponsesServer) -> None:
    with opened(server) as ws:
        ws.send(json.dumps({"type": "response.cancel"}))
        error = json.loads(ws.recv(timeout=10))
        assert error["error"]["param"] == "type"
        assert "'response.steer'" in error["error"]["message"]


def test_a_successor_that_cannot_start_returns_the_input(server: ResponsesServer) -> None:
    with opened(server) as ws:
        first = started(ws, server)
        server.faults.error_next()  # taken by the next response: the successor
        steer(ws, first)
        events = until(ws, "response.steer.failed")
        assert events[-2]["type"] == "response.incomplete"
        failed = events[-1]
        assert failed["error"]["code"] == "successor_creation_failed"
        assert failed["steer"]["id"] == events[0]["steer"]["id"]
        assert failed["steer"]["input"] == [
            {"type": "message", "role": "user", "content": "Also mention dogs"}
        ]
    assert [r.status for r in server.stats.requests] == ["incomplete", "successor_creation_failed"]
