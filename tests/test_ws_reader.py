"""The reader that owns each WebSocket: several receivers on one socket, frames routed
by ``stream_id``, a socket failure failing them all (real sockets, the local server's
lanes), over websocket-client (threads) and websockets (asyncio)."""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import pytest

from llmkit.exceptions import ConnectionClosed, Timeout
from llmkit.testing import ResponsesServer
from llmkit.transports._async_ws_reader import AsyncReceiver
from llmkit.transports._ws_reader import Receiver
from llmkit.transports.async_websocket import AsyncWebSocketTransport
from llmkit.transports.websocket import WebSocketConnection, WebSocketTransport

END = {"response.completed", "response.incomplete", "response.failed", "error"}
Frames = list[tuple[str | None, dict[str, Any]]]


def create(lane: str | None, text: str) -> str:
    frame: dict[str, Any] = {"type": "response.create", "model": "m", "input": text}
    if lane is not None:
        frame["stream_id"] = lane
    return json.dumps(frame)


def is_end(text: str) -> bool:
    return json.loads(text)["type"] in END


def runs(seq: list[Any]) -> int:
    """How many maximal runs of equal neighbours ``seq`` has."""
    return sum(1 for i, x in enumerate(seq) if i == 0 or seq[i - 1] != x)


def transport(server: ResponsesServer) -> WebSocketTransport:
    return WebSocketTransport(
        server.ws_url, headers={}, connect_timeout=5.0, read_timeout=5.0, keepalive=None
    )


def async_transport(server: ResponsesServer) -> AsyncWebSocketTransport:
    return AsyncWebSocketTransport(
        server.ws_url, headers={}, connect_timeout=5.0, read_timeout=5.0, keepalive=None
    )


def read_all(receiver: Receiver, arrivals: Frames) -> None:
    while True:
        text = receiver.next(5.0)
        event = json.loads(text)
        arrivals.append((receiver.lane, event))
        if event["type"] in END:
            receiver.close()
            return


def check_two_lanes(arrivals: Frames, server: ResponsesServer) -> None:
    for lane, event in arrivals:  # every frame went to the receiver of its lane
        assert event.get("stream_id") == lane
    a = [e for lane, e in arrivals if lane == "a"]
    b = [e for lane, e in arrivals if lane == "b"]
    assert a[-1]["type"] == b[-1]["type"] == "response.completed"
    assert a[-1]["response"]["output"][0]["content"][0]["text"].startswith("Echo: alpha")
    assert b[-1]["response"]["output"][0]["content"][0]["text"].startswith("Echo: beta")
    assert [e["sequence_number"] for e in a] == list(range(len(a)))  # nothing lost
    assert [e["sequence_number"] for e in b] == list(range(len(b)))
    assert runs([lane for lane, _ in arrivals]) > 4  # interleaved on the socket
    assert server.stats.max_in_flight == 2
    assert server.stats.connections_opened == 1


def test_two_receivers_on_one_socket_get_their_own_frames(server: ResponsesServer) -> None:
    server.token_delay = 0.01
    opener = transport(server)
    connection = opener.connect(None)
    try:
        a, b = connection.receiver("a"), connection.receiver("b")
        connection.send_text(create("a", "alpha one two three four five"))
        connection.send_text(create("b", "beta one two three four five"))
        arrivals: Frames = []
        threads = [threading.Thread(target=read_all, args=(r, arrivals)) for r in (a, b)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        check_two_lanes(arrivals, server)
        assert connection.reader.router.idle and connection.probe()
    finally:
        connection.close()
        opener.close()


def test_one_thread_reads_for_both_receivers(server: ResponsesServer) -> None:
    """The leader queues the other lane's frames; the other receiver then finds them
    without reading."""
    server.token_delay = 0.005
    opener = transport(server)
    connection = opener.connect(None)
    try:
        a, b = connection.receiver("a"), connection.receiver("b")
        connection.send_text(create("a", "alpha one two three four five"))
        connection.send_text(create("b", "beta one two three four five"))
        arrivals: Frames = []
        read_all(a, arrivals)
        assert b.queue  # b's frames so far were read by a and kept for b
        read_all(b, arrivals)
        assert [e.get("stream_id") for _, e in arrivals] == [lane for lane, _ in arrivals]
        assert server.stats.connections_opened == 1
    finally:
        connection.close()
        opener.close()


def test_a_close_fails_every_receiver_each_with_its_own_error(server: ResponsesServer) -> None:
    server.token_delay = 0.01
    server.faults.drop_after(12)  # the server aborts the socket mid-stream
    opener = transport(server)
    connection = opener.connect(None)
    errors: list[BaseException] = []

    def read(receiver: Receiver) -> None:
        try:
            read_all(receiver, [])
        except ConnectionClosed as exc:
            errors.append(exc)

    try:
        a, b = connection.receiver("a"), connection.receiver("b")
        connection.send_text(create("a", "alpha " * 40))
        connection.send_text(create("b", "beta " * 40))
        threads = [threading.Thread(target=read, args=(r,)) for r in (a, b)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        assert len(errors) == 2
        assert errors[0] is not errors[1]
        assert not connection.connected
        with pytest.raises(ConnectionClosed):
            a.next(1.0)
    finally:
        connection.close()
        opener.close()


def test_an_abandoned_lane_is_drained_to_its_end_and_the_other_goes_on(
    server: ResponsesServer,
) -> None:
    server.token_delay = 0.005
    opener = transport(server)
    connection = opener.connect(None)
    try:
        a, b = connection.receiver("a"), connection.receiver("b")
        connection.send_text(create("a", "alpha one two three four five"))
        connection.send_text(create("b", "beta one two three four five"))
        a.next(5.0)
        a.abandon(is_end)
        with pytest.raises(ValueError, match="busy"):
            connection.receiver("a")  # still draining
        arrivals: Frames = []
        read_all(b, arrivals)
        assert all(e.get("stream_id") == "b" for _, e in arrivals)
        assert arrivals[-1][1]["type"] == "response.completed"
        while not connection.reader.router.idle:  # a's frames go on being discarded
            assert connection.probe()
        again = connection.receiver("a")  # the lane is free again
        again.close()
    finally:
        connection.close()
        opener.close()


def test_a_wait_that_runs_out_is_the_waiters_alone(server: ResponsesServer) -> None:
    server.ttft = 0.6
    opener = transport(server)
    connection = opener.connect(None)
    try:
        a = connection.receiver("a")
        connection.send_text(create("a", "alpha"))
        with pytest.raises(Timeout):  # created and in_progress come at once, then nothing
            for _ in range(5):
                a.next(0.1)
        assert connection.connected
        arrivals: Frames = []
        read_all(a, arrivals)
        assert arrivals[-1][1]["type"] == "response.completed"
    finally:
        connection.close()
        opener.close()


# ---------------------------------------------------------------------------- asyncio


async def aread_all(receiver: AsyncReceiver, arrivals: Frames) -> None:
    while True:
        event = json.loads(await receiver.next(5.0))
        arrivals.append((receiver.lane, event))
        if event["type"] in END:
            receiver.close()
            return


def test_async_two_receivers_on_one_socket_get_their_own_frames(
    server: ResponsesServer,
) -> None:
    server.token_delay = 0.01

    async def scenario() -> Frames:
        connection = await async_transport(server).connect(None)
        try:
            a, b = connection.receiver("a"), connection.receiver("b")
            await connection.send_text(create("a", "alpha one two three four five"))
            await connection.send_text(create("b", "beta one two three four five"))
            arrivals: Frames = []
            await asyncio.gather(aread_all(a, arrivals), aread_all(b, arrivals))
            assert connection.reader.router.idle and await connection.probe()
            return arrivals
        finally:
            connection.close()

    check_two_lanes(asyncio.run(scenario()), server)


def test_async_a_close_fails_every_receiver(server: ResponsesServer) -> None:
    server.token_delay = 0.01
    server.faults.drop_after(12)

    async def scenario() -> list[BaseException]:
        connection = await async_transport(server).connect(None)
        try:
            a, b = connection.receiver("a"), connection.receiver("b")
            await connection.send_text(create("a", "alpha " * 40))
            await connection.send_text(create("b", "beta " * 40))
            tasks = [asyncio.ensure_future(aread_all(r, [])) for r in (a, b)]
            results = await asyncio.gather(*tasks, return_exceptions=True)
            return list(results)  # type: ignore[arg-type]
        finally:
            connection.close()

    errors = asyncio.run(scenario())
    assert all(isinstance(e, ConnectionClosed) for e in errors), errors
    assert errors[0] is not errors[1]


def only(connection: WebSocketConnection) -> Receiver | None:
    return connection.reader.router.only


def test_the_hot_path_keeps_a_lone_receiver_unrouted(server: ResponsesServer) -> None:
    """One receiver alone on its socket gets every frame without the frame being looked
    at (`Router.only`); a second receiver turns routing on."""
    opener = transport(server)
    connection: WebSocketConnection = opener.connect(None)
    try:
        a = connection.receiver("a")
        assert connection.reader.router.only is a
        b = connection.receiver("b")
        assert only(connection) is None
        b.close()
        assert connection.reader.router.only is a
        a.close()
    finally:
        connection.close()
        opener.close()
