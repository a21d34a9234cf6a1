"""Both WebSocket transports at the frame level, over real sockets on 127.0.0.1.

`AsyncWebSocketConnection` is held to `WebSocketConnection`'s contract: most cases are one
scenario run on both flavours (`Flavour` in test_security: one event loop per test, where
the sync connection's calls simply block), against the local server, or against
`RawServer` where the bytes themselves matter (a binary frame, a close frame, a length no
payload follows). The last section covers what only the async transport has:
cancellation, a ``close`` that awaits nothing, its payload stream.

Every scenario runs under `run_loop`, which fails a test that leaves a task behind or
makes the loop report a problem; warnings (an unclosed socket, a coroutine never
awaited) are errors in this suite.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import socket
import threading
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TypeVar

import pytest
from loop import API_KEY
from test_security import (
    ASYNC,
    FLAVOURS,
    SYNC,
    Connection,
    Flavour,
    RawServer,
    Request,
    accept_upgrade,
    assert_no_key,
    exception_texts,
    frame_header,
    read_frame,
    run_loop,
)

import llmkit
from llmkit.testing import ResponsesServer
from llmkit.transports.async_websocket import AsyncWebSocketConnection, AsyncWebSocketPayloadStream

TEXT, BINARY, CLOSE, PING, PONG = 0x1, 0x2, 0x8, 0x9, 0xA
NORMAL_CLOSURE = (1000).to_bytes(2, "big")
AUTHORIZATION = {"Authorization": f"Bearer {API_KEY}"}
WAIT = 5.0
"""Longest wait for one thing to happen (a frame, a server thread)."""
T = TypeVar("T")


def frame(payload: bytes, opcode: int = TEXT) -> bytes:
    """A final, unmasked server frame."""
    return frame_header(len(payload), opcode) + payload


def close_frame(code: int, reason: str = "") -> bytes:
    return frame(code.to_bytes(2, "big") + reason.encode(), CLOSE)


@dataclass
class Peer:
    """A `RawServer` handler playing the server's side of one WebSocket.

    It accepts the upgrade, sends ``late`` (once ``go`` is set when ``wait``), then
    records the client's frames until its close frame or EOF. Then it closes the TCP
    connection, as a server does after the closing handshake, or with ``linger`` waits
    for the client to close it (``eof``). ``hang_up`` closes the TCP connection right
    after sending, without a close frame.
    """

    late: bytes = b""
    wait: bool = False
    hang_up: bool = False
    linger: bool = False
    eof: bool = False
    go: threading.Event = field(default_factory=threading.Event)
    sent: threading.Event = field(default_factory=threading.Event)
    closed: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    received: list[tuple[int, bytes]] = field(default_factory=list)

    def __call__(self, request: Request, sock: socket.socket) -> None:
        try:
            accept_upgrade(request, sock)
            if self.wait and not self.go.wait(WAIT):
                return
            sock.sendall(self.late)
            self.sent.set()
            if self.hang_up:
                return
            with contextlib.suppress(OSError):  # EOF, or the 10 s socket timeout
                while CLOSE not in self.opcodes:
                    self.received.append(read_frame(sock))
                self.closed.set()
                while self.linger and sock.recv(65536):
                    pass
                self.eof = self.linger
        finally:
            self.done.set()

    @property
    def opcodes(self) -> list[int]:
        return [opcode for opcode, _ in self.received]


def on_peer(
    flavour: Flavour,
    peer: Peer,
    scenario: Callable[[Connection], Awaitable[T]],
    path: str = "/v1/responses",
    **options: Any,
) -> T:
    """Run ``scenario`` on a ``flavour`` connection to ``peer``; wait for the peer's end."""
    with RawServer(peer) as origin:
        result = flavour.session(origin.url("ws", path), scenario, **options)
        assert peer.done.wait(WAIT)
    return result


def closed_by_the_client(peer: Peer) -> bool:
    """Whether the client's last act was one normal close frame, then closing the socket."""
    return peer.received[-1:] == [(CLOSE, NORMAL_CLOSURE)] and peer.eof


async def wait_for(event: threading.Event) -> None:
    """Wait for a server thread's ``event`` without blocking the loop."""
    assert await asyncio.to_thread(event.wait, WAIT)


async def refused_within(connection: Connection, seconds: float) -> bool:
    """Probe until the connection is refused or ``seconds`` pass; whether it was."""
    for _ in range(int(seconds / 0.02) + 1):
        if not await connection.probe():
            return True
        await asyncio.sleep(0.02)
    return False


async def turn(connection: Connection, text: str = "hi") -> list[str]:
    """One ``response.create`` answered by the local server; the event types."""
    create = {"type": "response.create", "model": "scripted", "input": text}
    assert await connection.send_text(json.dumps(create)) > 0
    types: list[str] = []
    while not types or types[-1] != "response.completed":
        types.append(json.loads(await connection.recv_text(WAIT))["type"])
    return types


# --------------------------------------------------------------------------- the local server


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_recv_text_times_out_and_the_connection_still_serves_a_turn(
    server: ResponsesServer, flavour: Flavour
) -> None:
    async def scenario(connection: Connection) -> list[str]:
        with pytest.raises(llmkit.Timeout, match=r"no WebSocket event for 0\.2 seconds"):
            await connection.recv_text(0.2)
        assert connection.connected
        return await turn(connection)

    types = flavour.session(server.ws_url, scenario)
    assert types[0] == "response.created"
    assert server.stats.connections_opened == 1


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_probe_is_true_while_idle_and_false_once_the_server_closed(
    server: ResponsesServer, flavour: Flavour
) -> None:
    async def scenario(connection: Connection) -> None:
        assert await connection.probe()
        await turn(connection)
        assert await connection.probe()
        assert await connection.probe()  # looking changes nothing
        assert server.faults.close_idle() == 1
        assert await refused_within(connection, WAIT)
        assert not connection.connected

    flavour.session(server.ws_url, scenario, headers=AUTHORIZATION, secrets=[API_KEY])


# --------------------------------------------------------------------------- raw frames


class Refusal(NamedTuple):
    """What a frame from the server makes `recv_text` raise."""

    late: bytes
    error: type[llmkit.LLMKitError]
    match: str
    code: int | None = None
    still_open: bool | None = False
    """Whether the connection is still open afterwards (None: the flavours differ)."""


REASON = f"overloaded; your key {API_KEY} is fine"
REFUSALS = {
    "binary-frame": Refusal(
        frame(b"\x00\x01", BINARY), llmkit.ProtocolError, "expected text", still_open=True
    ),
    "invalid-utf8": Refusal(
        frame(b"\xff\xfe"), llmkit.ProtocolError, "not valid UTF-8", still_open=None
    ),
    "close-frame": Refusal(close_frame(1011, REASON), llmkit.ConnectionClosed, "1011: ", 1011),
    "empty-close-frame": Refusal(frame(b"", CLOSE), llmkit.ConnectionClosed, r"code None\)$"),
    "hang-up": Refusal(b"", llmkit.ConnectionClosed, "broke", 1006),
    # A length no payload follows: a client that waited for it would time out instead.
    "frame-announcing-1-TiB": Refusal(frame_header(1 << 40), llmkit.ProtocolError, "exceeded"),
}


@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize("case", REFUSALS)
def test_what_recv_text_refuses(flavour: Flavour, case: str) -> None:
    expected = REFUSALS[case]
    peer = Peer(expected.late, hang_up=case == "hang-up")

    async def scenario(connection: Connection) -> None:
        with pytest.raises(expected.error, match=expected.match) as caught:
            await connection.recv_text(WAIT)
        if isinstance(caught.value, llmkit.ConnectionClosed):
            assert caught.value.code == expected.code
        if expected.still_open is not None:
            assert connection.connected is expected.still_open
        assert_no_key(exception_texts(caught.value))

    on_peer(flavour, peer, scenario, secrets=[API_KEY])
    assert peer.opcodes == ([] if case == "hang-up" else [CLOSE])


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_a_close_frame_s_reason_is_kept_with_the_key_redacted(flavour: Flavour) -> None:
    async def scenario(connection: Connection) -> None:
        with pytest.raises(llmkit.ConnectionClosed) as caught:
            await connection.recv_text(WAIT)
        assert caught.value.reason == REASON.replace(API_KEY, "[REDACTED]")
        assert caught.value.reason == llmkit.exceptions.redact(REASON, [API_KEY])

    on_peer(flavour, Peer(close_frame(1011, REASON)), scenario, secrets=[API_KEY])


IDLE = {  # what arrives while the connection is idle: (frame, still usable, client's frames)
    "ping": (frame(b"still there?", PING), True, [PONG, CLOSE]),
    "late-error-event": (frame(b'{"type":"error"}'), False, [CLOSE]),
    "late-binary-frame": (frame(b"\x00", BINARY), False, [CLOSE]),
    "close-frame": (close_frame(1001, "idle connection closed"), False, [CLOSE]),
    "hang-up": (b"", False, []),
}


@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize("arrival", IDLE)
def test_probe_reads_what_arrived_while_idle(flavour: Flavour, arrival: str) -> None:
    late, usable, client_frames = IDLE[arrival]
    peer = Peer(late, wait=True, hang_up=arrival == "hang-up")

    async def scenario(connection: Connection) -> None:
        assert await connection.probe()
        peer.go.set()
        await wait_for(peer.sent)
        assert await refused_within(connection, 0.3 if usable else WAIT) is not usable
        assert connection.connected is usable

    on_peer(flavour, peer, scenario)
    assert peer.opcodes == client_frames
    if usable:
        assert peer.received[0] == (PONG, b"still there?")


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_close_sends_one_close_frame_at_once_and_can_be_repeated(flavour: Flavour) -> None:
    """And closes the socket without waiting for the server to close it first."""
    peer = Peer(linger=True)

    async def scenario(connection: Connection) -> None:
        was_open = connection.connected
        connection.close()
        assert (was_open, connection.connected) == (True, False)
        # Blocking the loop on purpose: only a frame written by close() itself arrives.
        assert peer.closed.wait(WAIT)
        connection.close()  # and once more when the session ends

    on_peer(flavour, peer, scenario)
    assert peer.received == [(CLOSE, NORMAL_CLOSURE)]
    assert closed_by_the_client(peer)


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_send_text_on_a_closed_connection_says_nothing_was_delivered(flavour: Flavour) -> None:
    async def scenario(connection: Connection) -> None:
        connection.close()
        with pytest.raises(llmkit.ConnectionClosed, match="before the request") as caught:
            await connection.send_text("{}")
        assert caught.value.code == 1006

    peer = Peer(linger=True)
    on_peer(flavour, peer, scenario)
    assert peer.received == [(CLOSE, NORMAL_CLOSURE)]  # nothing after the close frame
    assert peer.eof


# --------------------------------------------------------------------------- handshake


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_an_upgrade_left_unanswered_is_a_timeout(flavour: Flavour) -> None:
    def silent(request: Request, sock: socket.socket) -> None:
        with contextlib.suppress(OSError):
            sock.recv(1)  # until the client gives up

    with RawServer(silent) as origin, pytest.raises(llmkit.Timeout, match="timed out"):
        flavour.connect(origin.url("ws", "/v1/responses"), timeout=0.3)


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_a_key_in_the_url_is_redacted_from_repr_and_connect_errors(flavour: Flavour) -> None:
    path = f"/gateway/{API_KEY}/v1/responses"
    reprs: list[str] = []

    async def scenario(connection: Connection) -> None:
        reprs.append(repr(connection))
        connection.close()
        reprs.append(repr(connection))

    on_peer(flavour, Peer(), scenario, path, secrets=[API_KEY])
    assert "connected=True" in reprs[0]
    assert "/gateway/" in reprs[0]
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()
    with pytest.raises(llmkit.ConnectError, match="could not connect") as caught:
        flavour.connect(f"ws://127.0.0.1:{port}{path}", secrets=[API_KEY])
    assert_no_key(reprs + exception_texts(caught.value))


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_the_handshake_logs_no_key(flavour: Flavour, caplog: pytest.LogCaptureFixture) -> None:
    """With every logger at DEBUG (RawServer logs nothing: all records are the client's)."""
    caplog.set_level(logging.DEBUG)

    async def scenario(connection: Connection) -> None:
        await connection.probe()

    on_peer(flavour, Peer(), scenario, headers=AUTHORIZATION, secrets=[API_KEY])
    assert_no_key([f"{r.name} {r.getMessage()}" for r in caplog.records])


# --------------------------------------------------------------------------- async only


async def suspended(coroutine: Coroutine[Any, Any, Any], timeout: float = 5.0) -> None:
    """Wait until ``coroutine``, run by a task, has started and is waiting in an await.

    The coroutines here have no await before the one that blocks (``recv``), so this is
    the state a cancellation must find them in, without sleeping a guessed time.
    """
    deadline = asyncio.get_running_loop().time() + timeout
    while inspect.getcoroutinestate(coroutine) != inspect.CORO_SUSPENDED:
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not suspended within {timeout} s")
        await asyncio.sleep(0)


def test_close_is_a_plain_method_that_awaits_nothing() -> None:
    assert not inspect.iscoroutinefunction(AsyncWebSocketConnection.close)
    assert inspect.iscoroutinefunction(AsyncWebSocketConnection.recv_text)


def test_a_cancelled_recv_text_raises_cancelled_error_and_the_connection_survives() -> None:
    peer = Peer(frame(b'{"type":"late"}'), wait=True, linger=True)

    async def scenario(connection: Connection) -> str:
        receiving = connection.recv_text(WAIT)
        task = asyncio.create_task(receiving)
        await suspended(receiving)  # blocked in recv_text now
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert connection.connected
        peer.go.set()  # the frame the cancelled call was waiting for goes to the next one
        return await connection.recv_text(WAIT)

    assert on_peer(ASYNC, peer, scenario) == '{"type":"late"}'
    assert closed_by_the_client(peer)


def test_a_timeout_around_recv_text_is_the_caller_s_not_an_llmkit_timeout() -> None:
    peer = Peer(linger=True)

    async def scenario(connection: Connection) -> None:
        with pytest.raises(TimeoutError) as caught:
            await asyncio.wait_for(connection.recv_text(WAIT), 0.05)
        assert not isinstance(caught.value, llmkit.LLMKitError)
        assert connection.connected

    on_peer(ASYNC, peer, scenario)
    assert closed_by_the_client(peer)


def test_a_cancelled_task_closes_the_connection_from_finally() -> None:
    peer = Peer(linger=True)

    async def lease(connection: Connection) -> None:
        try:
            await connection.recv_text(WAIT)
        finally:
            connection.close()

    async def scenario(connection: Connection) -> None:
        leased = lease(connection)
        task = asyncio.create_task(leased)
        await suspended(leased)  # blocked in recv_text now
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not connection.connected
        await wait_for(peer.done)

    on_peer(ASYNC, peer, scenario)
    assert closed_by_the_client(peer)


def test_send_text_after_the_server_closed_says_nothing_was_delivered() -> None:
    peer = Peer(close_frame(1001, "going away"))

    async def scenario(connection: Connection) -> None:
        await wait_for(peer.done)  # the closing handshake is over, the socket closed
        for _ in range(int(WAIT / 0.01)):
            if not connection.connected:
                break
            await asyncio.sleep(0.01)
        with pytest.raises(llmkit.ConnectionClosed, match="before the request") as caught:
            await connection.send_text("{}")
        assert caught.value.code == 1006

    on_peer(ASYNC, peer, scenario)


def test_the_payload_stream_yields_text_frames_and_counts_them() -> None:
    payloads = [f'{{"n": {n}}}' for n in range(3)]
    peer = Peer(b"".join(frame(p.encode()) for p in payloads))

    async def scenario(connection: Connection) -> None:
        assert isinstance(connection, AsyncWebSocketConnection)
        stream = AsyncWebSocketPayloadStream(connection, bytes_sent=7, idle_timeout=0.2)
        received = [await anext(stream) for _ in payloads]
        assert received == payloads
        assert (stream.received, stream.bytes_sent, stream.secrets) == (3, 7, (API_KEY,))
        with pytest.raises(llmkit.Timeout, match=r"0\.2 seconds"):
            await anext(stream)
        await stream.aclose()
        assert connection.connected  # the stream leaves its connection alone

    on_peer(ASYNC, peer, scenario, secrets=[API_KEY])


def test_the_loop_guard_catches_a_task_left_behind() -> None:
    """The control for every test above: a leak would fail them."""

    async def leaky() -> None:
        asyncio.get_running_loop().create_task(asyncio.sleep(WAIT))

    with pytest.raises(pytest.fail.Exception, match="a task outlived the scenario"):
        run_loop(leaky)


def test_both_flavours_are_what_they_say() -> None:
    async def scenario(connection: Connection) -> type:
        return type(connection)

    with RawServer(Peer()) as origin:
        url = origin.url("ws", "/v1/responses")
        assert SYNC.session(url, scenario).__name__ == "Blocking"
        assert ASYNC.session(url, scenario) is AsyncWebSocketConnection
