"""The local server's `stream_id` lanes, limits, no-lane modes and pings (PROTOCOL.md §5).

Raw WebSocket frames over real 127.0.0.1 sockets: what a client sees on one socket when
several lanes run at once, and what the server's stats say about it.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
import websocket
import websockets
from websockets.sync.client import ClientConnection, connect

from llmkit.testing import STREAM_LIMIT_CODE, ResponsesServer

Event = dict[str, Any]
END = {"response.completed", "response.incomplete", "response.failed", "error"}


def create(ws: ClientConnection, lane: str | None = None, **body: Any) -> None:
    frame: Event = {"type": "response.create", "model": "m", "store": False, **body}
    if lane is not None:
        frame["stream_id"] = lane
    ws.send(json.dumps(frame))


def read_ends(ws: ClientConnection, n: int) -> list[Event]:
    """Every frame until `n` responses (or request errors) have ended, in arrival order."""
    events: list[Event] = []
    while n:
        event = json.loads(ws.recv(timeout=10))
        events.append(event)
        n -= event["type"] in END
    return events


def of(events: list[Event], lane: str | None) -> list[Event]:
    return [e for e in events if e.get("stream_id") == lane]


def text_of(events: list[Event]) -> str:
    return "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")


def last_response(events: list[Event]) -> Event:
    response: Event = events[-1]["response"]
    return response


def lanes_in_order(events: list[Event]) -> list[str | None]:
    return [e.get("stream_id") for e in events]


def runs(seq: list[Any]) -> int:
    """How many maximal runs of equal neighbours `seq` has (2 lanes back to back: 2)."""
    return sum(1 for i, x in enumerate(seq) if i == 0 or seq[i - 1] != x)


def test_two_lanes_stream_at_once_and_interleave(server: ResponsesServer) -> None:
    server.token_delay = 0.01
    with connect(server.ws_url, open_timeout=5) as ws:
        create(ws, "a", input="alpha one two three four")
        create(ws, "b", input="beta one two three four")
        events = read_ends(ws, 2)
    assert {e.get("stream_id") for e in events} == {"a", "b"}  # every event carries its lane
    assert runs(lanes_in_order(events)) > 4
    a, b = of(events, "a"), of(events, "b")
    assert a[-1]["type"] == b[-1]["type"] == "response.completed"
    assert text_of(a).startswith("Echo: alpha one two three four [user=1")
    assert text_of(b).startswith("Echo: beta one two three four [user=1")
    assert [e["sequence_number"] for e in a] == list(range(len(a)))  # per response
    assert server.stats.max_in_flight == 2
    assert server.stats.lanes_used == 2
    assert server.stats.connections[0].lanes == ("a", "b")


def test_lanes_interleave_without_any_delay(server: ResponsesServer) -> None:
    with connect(server.ws_url, open_timeout=5) as ws:
        create(ws, "a", model="bench-words-5000", input="x")
        create(ws, "b", model="bench-words-5000", input="x")
        events = read_ends(ws, 2)
    assert runs(lanes_in_order(events)) > 4
    assert len(of(events, "a")) == len(of(events, "b"))


def test_one_lane_runs_its_responses_in_order(server: ResponsesServer) -> None:
    server.token_delay = 0.01
    with connect(server.ws_url, open_timeout=5) as ws:
        create(ws, "a", input="first")
        create(ws, "a", input="second")
        events = read_ends(ws, 2)
    kinds = [e["type"] for e in events]
    first_end = kinds.index("response.completed")
    assert kinds.count("response.created") == 2
    assert kinds.index("response.created", 1) == first_end + 1  # no overlap, FIFO
    assert text_of(events[: first_end + 1]).startswith("Echo: first")
    assert text_of(events[first_end + 1 :]).startswith("Echo: second")
    assert all(e["stream_id"] == "a" for e in events)
    assert server.stats.max_in_flight == 1


def test_the_default_lane_queues_and_its_events_carry_no_stream_id(
    server: ResponsesServer,
) -> None:
    server.token_delay = 0.01
    with connect(server.ws_url, open_timeout=5) as ws:
        create(ws, input="first")
        create(ws, input="second")
        events = read_ends(ws, 2)
    assert not any("stream_id" in e for e in events)
    kinds = [e["type"] for e in events]
    assert kinds.index("response.created", 1) == kinds.index("response.completed") + 1
    assert text_of(events).startswith("Echo: first")
    assert kinds[-1] == "response.completed"
    assert server.stats.lanes_used == 0 and server.stats.max_in_flight == 1


def test_each_lane_keeps_its_own_head(server: ResponsesServer) -> None:
    with connect(server.ws_url, open_timeout=5) as ws:
        create(ws, "a", input="a1")
        a1 = last_response(read_ends(ws, 1))
        create(ws, "b", input="b1")
        b1 = last_response(read_ends(ws, 1))
        create(ws, input="d1")
        d1 = last_response(read_ends(ws, 1))
        create(ws, "a", input="a2", previous_response_id=a1["id"])
        a2 = read_ends(ws, 1)
        create(ws, "b", input="b2", previous_response_id=b1["id"])
        b2 = read_ends(ws, 1)
        create(ws, input="d2", previous_response_id=d1["id"])
        d2 = read_ends(ws, 1)
    assert text_of(a2).startswith("Echo: a2 [user=2 assistant=1")
    assert text_of(b2).startswith("Echo: b2 [user=2 assistant=1")
    assert text_of(d2).startswith("Echo: d2 [user=2 assistant=1")
    records = server.stats.requests
    assert [(r.stream_id, r.input_items, r.fork) for r in records] == [
        ("a", 1, False),
        ("b", 1, False),
        (None, 1, False),
        ("a", 1, False),
        ("b", 1, False),
        (None, 1, False),
    ]
    assert [r.previous_response_id for r in records[3:]] == [a1["id"], b1["id"], d1["id"]]
    assert server.stats.forks == 0


def test_a_new_lane_forks_from_another_lanes_head(server: ResponsesServer) -> None:
    with connect(server.ws_url, open_timeout=5) as ws:
        create(ws, "parent", input="p1")
        p1 = last_response(read_ends(ws, 1))
        server.token_delay = 0.01
        for child in ("c1", "c2"):
            create(ws, child, input=f"{child} go", previous_response_id=p1["id"])
        forks = read_ends(ws, 2)
        create(ws, "parent", input="p2", previous_response_id=p1["id"])
        p2 = read_ends(ws, 1)
    for child in ("c1", "c2"):
        assert text_of(of(forks, child)).startswith(f"Echo: {child} go [user=2 assistant=1")
    assert text_of(p2).startswith("Echo: p2 [user=2 assistant=1")  # the parent is kept
    assert server.stats.forks == 2
    assert [r.fork for r in server.stats.requests] == [False, True, True, False]
    assert server.stats.max_in_flight == 2


def test_a_failed_same_lane_continuation_evicts_its_head(server: ResponsesServer) -> None:
    with connect(server.ws_url, open_timeout=5) as ws:
        create(ws, "a", input="a1")
        a1 = last_response(read_ends(ws, 1))
        server.faults.error_next(status=500)
        create(ws, "a", input="a2", previous_response_id=a1["id"])
        failed = read_ends(ws, 1)
        create(ws, "a", input="a2", previous_response_id=a1["id"])
        missed = read_ends(ws, 1)
    assert failed[-1]["type"] == "error" and failed[-1]["stream_id"] == "a"
    assert missed[-1]["error"]["code"] == "previous_response_not_found"
    assert missed[-1]["stream_id"] == "a" and missed[-1]["status"] == 400


def test_a_failed_fork_keeps_the_parent(server: ResponsesServer) -> None:
    with connect(server.ws_url, open_timeout=5) as ws:
        create(ws, "a", input="a1")
        a1 = last_response(read_ends(ws, 1))
        server.faults.error_next(status=500)
        create(ws, "b", input="b1", previous_response_id=a1["id"])
        failed = read_ends(ws, 1)
        server.faults.fail_next()
        create(ws, "c", input="c1", previous_response_id=a1["id"])
        failed_too = read_ends(ws, 1)
        create(ws, "a", input="a2", previous_response_id=a1["id"])
        a2 = read_ends(ws, 1)
    assert failed[-1]["type"] == "error" and failed[-1]["stream_id"] == "b"
    assert failed_too[-1]["type"] == "response.failed" and failed_too[-1]["stream_id"] == "c"
    assert text_of(a2).startswith("Echo: a2 [user=2 assistant=1")


@pytest.mark.parametrize("evicts", [True, False])
def test_whether_a_refused_continuation_evicts_its_head(
    server: ResponsesServer, evicts: bool
) -> None:
    server.ws_preflight_evicts = evicts
    bad = [{"type": "function_call_output", "call_id": "call_nope", "output": "1"}]
    with connect(server.ws_url, open_timeout=5) as ws:
        create(ws, "a", input="a1")
        a1 = last_response(read_ends(ws, 1))
        create(ws, "a", input=bad, previous_response_id=a1["id"])  # a validation 400
        refused = read_ends(ws, 1)
        create(ws, "a", input="a2", previous_response_id=a1["id"])
        after_refused = read_ends(ws, 1)
        create(ws, "b", input="b1")
        b1 = last_response(read_ends(ws, 1))
        server.faults.error_next(status=429, code="rate_limit_exceeded")
        create(ws, "b", input="b2", previous_response_id=b1["id"])
        limited = read_ends(ws, 1)
        create(ws, "b", input="b2", previous_response_id=b1["id"])
        after_limited = read_ends(ws, 1)
    assert len(refused) == len(limited) == 1
    assert refused[0]["status"] == 400 and refused[0]["stream_id"] == "a"
    assert limited[0]["status"] == 429 and limited[0]["stream_id"] == "b"
    for lane, events in (("a", after_refused), ("b", after_limited)):
        if evicts:
            assert events[-1]["error"]["code"] == "previous_response_not_found"
        else:
            assert text_of(events).startswith(f"Echo: {lane}2 [user=2 assistant=1")


@pytest.mark.parametrize(("eviction", "fork_ok"), [("end", True), ("start", False)])
def test_when_a_lanes_previous_head_leaves_the_cache(
    server: ResponsesServer, eviction: str, fork_ok: bool
) -> None:
    # PROTOCOL.md §5.4: "end" (default) keeps the head until the lane's next response
    # ends, "start" drops it when that response starts.
    server.ws_head_eviction = eviction  # type: ignore[assignment]
    with connect(server.ws_url, open_timeout=5) as ws:
        create(ws, "a", input="a1")
        a1 = last_response(read_ends(ws, 1))
        server.token_delay = 0.02
        create(ws, "a", input="a2 is a longer answer", previous_response_id=a1["id"])
        assert json.loads(ws.recv(timeout=5))["type"] == "response.created"
        create(ws, "b", input="b1", previous_response_id=a1["id"])
        events = read_ends(ws, 2)
    fork = of(events, "b")
    assert of(events, "a")[-1]["type"] == "response.completed"
    if fork_ok:
        assert fork[-1]["type"] == "response.completed"
    else:
        assert fork[-1]["error"]["code"] == "previous_response_not_found"


def test_at_most_max_in_flight_responses_run_and_the_rest_wait(server: ResponsesServer) -> None:
    server.ws_max_in_flight = 2
    server.token_delay = 0.01
    with connect(server.ws_url, open_timeout=5) as ws:
        for lane in ("a", "b", "c"):
            create(ws, lane, input=f"{lane} one two three")
        events = read_ends(ws, 3)
    created = [e["stream_id"] for e in events if e["type"] == "response.created"]
    first_end = next(i for i, e in enumerate(events) if e["type"] == "response.completed")
    c_created = next(i for i, e in enumerate(events) if e.get("stream_id") == "c")
    assert created == ["a", "b", "c"] and c_created > first_end
    assert [e["type"] for e in events].count("response.completed") == 3
    assert server.stats.max_in_flight == 2


def test_sixteen_responses_run_at_once_by_default(server: ResponsesServer) -> None:
    server.token_delay = 0.02
    with connect(server.ws_url, open_timeout=5) as ws:
        for i in range(17):
            create(ws, f"lane{i}", input="one two three")
        events = read_ends(ws, 17)
    assert [e["type"] for e in events].count("response.completed") == 17
    assert server.stats.max_in_flight == 16


def test_too_many_named_lanes_is_a_request_error(server: ResponsesServer) -> None:
    server.ws_max_lanes = 2
    with connect(server.ws_url, open_timeout=5) as ws:
        create(ws, "a", input="x")
        create(ws, "b", input="x")
        read_ends(ws, 2)
        create(ws, "c", input="x")
        refused = read_ends(ws, 1)
        create(ws, "a", input="x")
        create(ws, input="x")
        others = read_ends(ws, 2)
    error = refused[-1]
    assert error["type"] == "error" and error["status"] == 400 and error["stream_id"] == "c"
    assert error["error"]["code"] == STREAM_LIMIT_CODE == "websocket_stream_limit_reached"
    assert error["error"]["param"] == "stream_id"
    assert [e["type"] for e in others].count("response.completed") == 2
    assert server.stats.requests[2].status == STREAM_LIMIT_CODE
    assert server.stats.lanes_used == 2


def test_thirty_two_named_lanes_by_default(server: ResponsesServer) -> None:
    with connect(server.ws_url, open_timeout=5) as ws:
        for i in range(33):
            create(ws, f"l{i}", input="x")
            events = read_ends(ws, 1)
    assert events[-1]["error"]["code"] == STREAM_LIMIT_CODE
    assert server.stats.lanes_used == 32


@pytest.mark.parametrize("lane", ["", "a b", "x" * 257, "ü", 7])
def test_a_bad_stream_id_is_a_request_error(server: ResponsesServer, lane: Any) -> None:
    with connect(server.ws_url, open_timeout=5) as ws:
        ws.send(json.dumps({"type": "response.create", "model": "m", "stream_id": lane}))
        error = read_ends(ws, 1)[-1]
        create(ws, "x" * 256, input="ok")
        ok = read_ends(ws, 1)
    assert error["error"]["code"] == "invalid_stream_id" and error["status"] == 400
    assert error["error"]["param"] == "stream_id"
    assert ok[-1]["type"] == "response.completed"
    assert server.stats.generations == 1


def test_a_server_that_refuses_stream_id(server: ResponsesServer) -> None:
    server.ws_lanes = "refuse"
    with connect(server.ws_url, open_timeout=5) as ws:
        create(ws, "a", input="x")
        refused = read_ends(ws, 1)
        create(ws, input="x")
        ok = read_ends(ws, 1)
    assert len(refused) == 1 and "stream_id" not in refused[0]
    assert refused[0]["error"]["code"] == "unsupported_parameter"
    assert refused[0]["error"]["param"] == "stream_id"
    assert ok[-1]["type"] == "response.completed"
    assert server.stats.generations == 1


@pytest.mark.parametrize("mode", ["ignore", "serial"])
def test_servers_without_lanes_run_one_response_at_a_time(
    server: ResponsesServer, mode: str
) -> None:
    server.ws_lanes = mode  # type: ignore[assignment]
    server.token_delay = 0.01
    with connect(server.ws_url, open_timeout=5) as ws:
        create(ws, "a", input="a1")
        create(ws, "b", input="b1")
        events = read_ends(ws, 2)
        a1 = next(e for e in events if e["type"] == "response.completed")["response"]
        b1 = last_response(events)
        # One cached head per socket: the most recent response, whatever the stream_id.
        create(ws, "a", input="a2", previous_response_id=a1["id"])
        missed = read_ends(ws, 1)
        create(ws, "a", input="b2", previous_response_id=b1["id"])
        chained = read_ends(ws, 1)
    kinds = [e["type"] for e in events]
    assert kinds.index("response.created", 1) == kinds.index("response.completed") + 1
    echoed = {e.get("stream_id") for e in events}
    assert echoed == ({None} if mode == "ignore" else {"a", "b"})
    assert missed[-1]["error"]["code"] == "previous_response_not_found"
    assert text_of(chained).startswith("Echo: b2 [user=2 assistant=1")
    assert server.stats.max_in_flight == 1 and server.stats.lanes_used == 0
    assert server.stats.requests[0].stream_id == "a"  # what the client sent


def test_a_second_create_can_be_refused_instead_of_queued(server: ResponsesServer) -> None:
    server.ws_lanes, server.ws_when_busy = "serial", "error"
    server.token_delay = 0.01
    with connect(server.ws_url, open_timeout=5) as ws:
        create(ws, "a", input="first")
        assert json.loads(ws.recv(timeout=5))["type"] == "response.created"
        create(ws, "b", input="second")
        events = read_ends(ws, 2)
    busy = [e for e in events if e["type"] == "error"]
    assert busy[0]["error"]["code"] == "conversation_already_has_active_response"
    assert busy[0]["stream_id"] == "b"
    assert server.stats.generations == 1


def test_lane_settings_are_checked(server: ResponsesServer) -> None:
    with pytest.raises(ValueError, match="ws_lanes"):
        server.ws_lanes = "maybe"  # type: ignore[assignment]
    with pytest.raises(ValueError, match="ws_max_in_flight"):
        server.ws_max_in_flight = 0


def server_frames(data: bytes) -> list[tuple[int, bytes]]:
    """(opcode, payload) of unmasked server frames with payloads under 126 bytes."""
    frames = []
    while data:
        opcode, size = data[0] & 0x0F, data[1] & 0x7F
        frames.append((opcode, data[2 : 2 + size]))
        data = data[2 + size :]
    return frames


def test_server_pings_close_a_socket_whose_pong_never_comes(server: ResponsesServer) -> None:
    # websocket-client answers pings only inside recv: idle, it is a silent peer.
    server.ws_ping_interval, server.ws_pong_timeout = 0.2, 0.3
    ws = websocket.create_connection(server.ws_url, timeout=5)
    assert ws.sock is not None
    try:
        time.sleep(1.5)
        received = b""
        while chunk := ws.sock.recv(4096):  # the raw bytes: recv would answer the ping
            received += chunk
    finally:
        ws.close()
    frames = server_frames(received)
    assert frames[0][0] == 0x9  # a ping
    frame = frames[-1][1] if frames[-1][0] == 0x8 else None
    assert frame is not None
    assert int.from_bytes(frame[:2], "big") == 1011
    assert frame[2:] == b"keepalive ping timeout"
    assert server.stats.ping_timeouts == 1


def test_server_pings_spare_a_socket_that_answers(server: ResponsesServer) -> None:
    server.ws_ping_interval, server.ws_pong_timeout = 0.2, 0.3

    async def idle_then_turn() -> str:
        async with websockets.connect(server.ws_url, ping_interval=None) as ws:
            frame = {"type": "response.create", "model": "m", "input": "a", "store": False}
            await ws.send(json.dumps(frame))
            first: Event = {}
            while first.get("type") != "response.completed":
                first = json.loads(await ws.recv())
            await asyncio.sleep(1.5)  # idle: the library answers pings in the background
            frame |= {"input": "b", "previous_response_id": first["response"]["id"]}
            await ws.send(json.dumps(frame))
            deltas = []
            while True:
                event = json.loads(await ws.recv())
                if event["type"] == "response.output_text.delta":
                    deltas.append(event["delta"])
                if event["type"] in END:
                    return "".join(deltas)

    assert asyncio.run(idle_then_turn()).startswith("Echo: b [user=2 assistant=1")
    assert server.stats.ping_timeouts == 0
    assert server.stats.connections_opened == 1
