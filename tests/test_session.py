"""The WebSocket session's decisions over real sockets, on `Provider` and `AsyncProvider`.

What ``llmkit.openai._session`` decides with what it counted and remembered: how many
events an attempt received before it failed (a failure after the model ran is never
replayed: the server must see exactly one generation), which pooled connection a call
gets, when a connection is too old to reuse, and when the cool-down after a failed
connect ends. Scripted servers (`RawServer`) play the failures the local server cannot.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import time
from collections.abc import Callable
from typing import Any

import events as ev
import httpx
import pytest
from loop import TRANSPORTS, Transport, idle_connections_closed, provider, wait_until
from test_security import (
    RawServer,
    Request,
    accept_upgrade,
    frame_header,
    raw_provider,
    read_frame,
    recv_frame,
    responses_events,
)

import llmkit
from llmkit.testing import ResponsesServer
from llmkit.transports.async_websocket import AsyncWebSocketConnection
from llmkit.transports.websocket import WebSocketConnection

WEBSOCKET = [t for t in TRANSPORTS if t == "websocket"]
"""WebSocket mode through `Provider` and through `AsyncProvider`."""


def close_frame(code: int, reason: bytes = b"bye") -> bytes:
    payload = code.to_bytes(2, "big") + reason
    return frame_header(len(payload), opcode=0x8) + payload


def scripted(frames: list[bytes], creates: list[bytes]) -> Callable[[Request, socket.socket], None]:
    """A WebSocket handler: read one ``response.create``, send ``frames`` (text frames as
    they are, close frames built with `close_frame`), then wait for the client's close
    frame (the closing handshake) or for it to go away, and close the TCP connection."""

    def handler(request: Request, sock: socket.socket) -> None:
        accept_upgrade(request, sock)
        creates.append(recv_frame(sock))
        for frame in frames:
            sock.sendall(frame if frame[0] == 0x88 else frame_header(len(frame)) + frame)
        with contextlib.suppress(OSError, ConnectionError):
            while read_frame(sock)[0] != 0x8:
                pass

    return handler


# --------------------------------------------------------------------------- events counted


@pytest.mark.parametrize("code", [1000, 1001])
@pytest.mark.parametrize(("events", "text"), [(1, ""), (4, "Hello")])
@pytest.mark.parametrize("transport", WEBSOCKET)
def test_a_clean_close_after_events_raises_with_the_text_so_far_and_is_never_replayed(
    transport: Transport, code: int, events: int, text: str
) -> None:
    # Before any event a clean close means the server never ran the request (it is sent
    # again); after one, the model ran: resending would bill a second generation.
    creates: list[bytes] = []
    frames = [p.encode() for p in responses_events("Hello")[:events]] + [close_frame(code)]
    with (
        RawServer(scripted(frames, creates)) as origin,
        raw_provider(origin.url("http"), transport) as p,
        pytest.raises(llmkit.ConnectionClosed) as caught,
    ):
        p.language_model("gpt-test").generate(llmkit.Call("hi"))
    assert caught.value.code == code
    partial = caught.value.partial
    assert partial is not None and partial.text == text and partial.id == "resp_1"
    assert (origin.accepted, len(creates)) == (1, 1)
    assert [r.method for r in origin.requests] == ["GET"]  # and never over HTTP


@pytest.mark.parametrize("transport", WEBSOCKET)
def test_an_error_event_after_one_other_event_is_raised_not_resent(transport: Transport) -> None:
    # previous_response_not_found as the first frame is resent in full; after
    # response.created the response had started, so it is the caller's to see.
    creates: list[bytes] = []
    frames = [
        ev.created().encode(),
        ev.error_nested("previous_response_not_found", "gone", status=400).encode(),
    ]
    with (
        RawServer(scripted(frames, creates)) as origin,
        raw_provider(origin.url("http"), transport) as p,
        pytest.raises(llmkit.BadRequestError) as caught,
    ):
        p.language_model("gpt-test").generate(llmkit.Call("hi"))
    assert caught.value.code == "previous_response_not_found"
    assert (origin.accepted, len(creates)) == (1, 1)


@pytest.fixture
def broken_first_connection(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The first WebSocket each test opens can no longer send (its socket is shut for
    writing, or closed by the client): the request frame fails while being sent.
    Returns the count of connections opened."""
    opened: list[int] = []
    sync_connect = WebSocketConnection.connect.__func__  # type: ignore[attr-defined]
    async_connect = AsyncWebSocketConnection.connect.__func__  # type: ignore[attr-defined]

    def connect(cls: type[WebSocketConnection], *args: Any, **kwargs: Any) -> Any:
        connection = sync_connect(cls, *args, **kwargs)
        opened.append(1)
        if len(opened) == 1:
            connection._ws.sock.shutdown(socket.SHUT_WR)
        return connection

    async def aconnect(cls: type[AsyncWebSocketConnection], *args: Any, **kwargs: Any) -> Any:
        connection = await async_connect(cls, *args, **kwargs)
        opened.append(1)
        if len(opened) == 1:
            await connection._ws.close()
        return connection

    monkeypatch.setattr(WebSocketConnection, "connect", classmethod(connect))
    monkeypatch.setattr(AsyncWebSocketConnection, "connect", classmethod(aconnect))
    return opened


@pytest.mark.parametrize("transport", WEBSOCKET)
def test_a_failure_while_sending_reconnects_and_sends_once(
    server: ResponsesServer, transport: Transport, broken_first_connection: list[int]
) -> None:
    # Nothing was delivered, so the request goes out again on a new connection.
    with provider(server, transport) as p:
        response = p.language_model("scripted").generate(llmkit.Call("hello"))
    assert response.text.startswith("Echo: hello")
    assert response.metadata.transport == "websocket"
    assert not response.metadata.connection_reused
    assert len(broken_first_connection) == 2
    assert len(server.stats.requests) == 1
    assert server.stats.generations == 1


@pytest.mark.parametrize("transport", WEBSOCKET)
def test_a_missing_chain_head_is_resent_in_full_on_the_same_connection(
    server: ResponsesServer, transport: Transport
) -> None:
    # previous_response_not_found is about the request: the socket stays (PROTOCOL.md §3.1).
    with provider(server, transport) as p:
        model = p.language_model("scripted")
        first = model.generate(llmkit.Call("first"))
        server.faults.error_next(code="previous_response_not_found", message="gone", status=400)
        history: list[llmkit.Message] = [
            llmkit.UserMessage("first"),
            first.message,
            llmkit.UserMessage("next"),
        ]
        response = model.generate(llmkit.Call(history))
    assert response.text.startswith("Echo: next [user=2 assistant=1 ")
    assert response.metadata.input_mode == "full"
    assert response.metadata.connection_reused
    assert server.stats.connections_opened == 1
    missed, resent = server.stats.requests[1:]
    assert missed.status == "previous_response_not_found"
    assert (missed.previous_response_id, missed.input_items) == (first.id, 1)
    assert (resent.previous_response_id, resent.input_items) == (None, 3)
    assert missed.connection_id == resent.connection_id == connection_of(server, first)
    assert server.stats.generations == 2
    assert server.stats.context_violations == 0


# --------------------------------------------------------------------------- which connection


def connection_of(server: ResponsesServer, response: llmkit.Response) -> int | None:
    """The server's id of the WebSocket connection that produced ``response``."""
    (record,) = [r for r in server.stats.requests if r.response_id == response.id]
    return record.connection_id


@pytest.mark.parametrize("transport", WEBSOCKET)
def test_an_explicit_previous_response_id_goes_to_the_connection_that_holds_it(
    server: ResponsesServer, transport: Transport
) -> None:
    with provider(server, transport, ws_max_connections=2, ws_lanes=False) as p:
        model = p.language_model("scripted")
        first = model.generate(llmkit.Call("first"))
        second = model.generate(llmkit.Call("second"))
        assert connection_of(server, first) != connection_of(server, second)
        options = {"openai": {"previous_response_id": second.id}}
        third = model.generate(llmkit.Call("third", provider_options=options))
    # Only the connection whose cache holds `second` can continue it (store=false).
    assert connection_of(server, third) == connection_of(server, second)
    assert third.metadata.connection_reused
    assert third.text.startswith("Echo: third [user=2 assistant=1 ")
    assert server.stats.generations == 3


@pytest.mark.parametrize("transport", WEBSOCKET)
def test_a_new_conversation_takes_the_least_recently_used_idle_connection(
    server: ResponsesServer, transport: Transport
) -> None:
    with provider(server, transport, ws_max_connections=2, ws_lanes=False) as p:
        model = p.language_model("scripted")
        first = model.generate(llmkit.Call("first"))
        second = model.generate(llmkit.Call("second"))
        history: list[llmkit.Message] = [llmkit.UserMessage("first"), first.message]
        history.append(llmkit.UserMessage("more"))
        more = model.generate(llmkit.Call(history))  # continues `first`: its connection
        assert connection_of(server, more) == connection_of(server, first)
        third = model.generate(llmkit.Call("third"))  # the pool is full
        assert connection_of(server, third) == connection_of(server, second)
        history += [more.message, llmkit.UserMessage("again")]
        again = model.generate(llmkit.Call(history))
    # The recently used connection kept its chain: the conversation stays incremental.
    assert connection_of(server, again) == connection_of(server, first)
    assert again.metadata.input_mode == "incremental"
    assert server.stats.connections_opened == 2


@pytest.mark.parametrize("transport", WEBSOCKET)
def test_a_connection_past_ws_max_age_is_closed_and_not_reused(
    server: ResponsesServer, transport: Transport, caplog: pytest.LogCaptureFixture
) -> None:
    with (
        caplog.at_level(logging.DEBUG, logger="llmkit"),
        provider(server, transport, ws_max_age=0.05) as p,
    ):
        model = p.language_model("scripted")
        first = model.generate(llmkit.Call("first"))
        time.sleep(0.1)  # the connection ages past ws_max_age (a wait for time itself)
        history: list[llmkit.Message] = [
            llmkit.UserMessage("first"),
            first.message,
            llmkit.UserMessage("next"),
        ]
        response = model.generate(llmkit.Call(history))
    old = connection_of(server, first)
    assert old is not None and connection_of(server, response) != old
    assert not response.metadata.connection_reused
    assert response.metadata.input_mode == "full"
    assert server.stats.connections_opened == 2
    messages = [r.getMessage() for r in caplog.records if r.name == "llmkit"]
    assert "retiring WebSocket connection 0: connection older than 0.05 seconds" in messages
    assert "closing WebSocket connection 0: retired and idle" in messages
    assert not any("found closed before sending" in m for m in messages)
    wait_until(lambda: not server.stats.connection(old).open)


# --------------------------------------------------------------------------- cool-down


@pytest.mark.parametrize("transport", WEBSOCKET)
def test_a_successful_connect_resets_the_cool_down(
    server: ResponsesServer, transport: Transport, caplog: pytest.LogCaptureFixture
) -> None:
    # The cool-down doubles with each failed connect in a row; a connect that works
    # in between starts it over at ws_cooldown.
    with (
        caplog.at_level(logging.DEBUG, logger="llmkit"),
        provider(server, transport, ws_cooldown=0.1, ws_cooldown_max=10, ws_lanes=False) as p,
    ):
        model = p.language_model("scripted")
        server.faults.reject_upgrades(status=503)
        assert model.generate(llmkit.Call("one")).metadata.transport == "http"
        time.sleep(0.15)  # the 0.1 s cool-down passes (a wait for time itself)
        assert model.generate(llmkit.Call("two")).metadata.transport == "websocket"
        server.faults.reject_upgrades(status=503)
        # A new conversation gets a new connection (the pool is not full): it fails.
        assert model.generate(llmkit.Call("three")).metadata.transport == "http"
    waits = [
        m.rsplit("HTTP for ", 1)[1]
        for m in (r.getMessage() for r in caplog.records if r.name == "llmkit")
        if m.startswith("WebSocket connect failed")
    ]
    assert waits == ["0.1 s", "0.1 s"]


@pytest.mark.parametrize("transport", WEBSOCKET)
def test_a_warmup_during_the_cool_down_is_a_no_op(
    server: ResponsesServer, transport: Transport
) -> None:
    with provider(server, transport) as p:  # the default cool-down: 30 s
        model = p.language_model("scripted")
        server.faults.reject_upgrades(status=503)
        assert model.generate(llmkit.Call("one")).metadata.transport == "http"
        result = model.warmup(llmkit.Call("warm"))
    assert result == llmkit.WarmupResult.skipped()
    assert server.stats.connections_opened == 0  # not even tried
    assert [r.transport for r in server.stats.requests] == ["http"]


# --------------------------------------------------------------------------- the pool


@pytest.mark.parametrize("transport", WEBSOCKET)
def test_a_call_finding_every_connection_busy_times_out(
    server: ResponsesServer, transport: Transport
) -> None:
    timeout = httpx.Timeout(10.0, pool=0.3)
    with provider(server, transport, ws_max_connections=1, timeout=timeout, ws_lanes=False) as p:
        model = p.language_model("scripted")
        server.faults.slow(0.02)
        stream = model.stream(llmkit.Call("a b c d e f g h"))
        next(iter(stream))  # the only connection is now leased
        started = time.monotonic()
        with pytest.raises(llmkit.Timeout, match="all 1 WebSocket connections stayed busy"):
            model.generate(llmkit.Call("blocked"))
        assert time.monotonic() - started < 5
        stream.close()
        assert model.generate(llmkit.Call("free")).text.startswith("Echo: free")
    assert [r.status for r in server.stats.requests][-1] == "completed"


@pytest.mark.parametrize("transport", WEBSOCKET)
def test_a_server_close_while_idle_is_found_by_the_probe_before_sending(
    server: ResponsesServer, transport: Transport, caplog: pytest.LogCaptureFixture
) -> None:
    with (
        caplog.at_level(logging.DEBUG, logger="llmkit"),
        provider(server, transport) as p,
    ):
        model = p.language_model("scripted")
        first = model.generate(llmkit.Call("first"))
        idle_connections_closed(server)
        history: list[llmkit.Message] = [
            llmkit.UserMessage("first"),
            first.message,
            llmkit.UserMessage("next"),
        ]
        response = model.generate(llmkit.Call(history))
    assert response.metadata.input_mode == "full" and not response.metadata.connection_reused
    assert connection_of(server, response) != connection_of(server, first)
    messages = [r.getMessage() for r in caplog.records if r.name == "llmkit"]
    # The probe found the close: no request was sent on the closed connection.
    assert "closing WebSocket connection 0: connection found closed before sending" in messages
    assert not any(m.startswith("resending") for m in messages)
    assert len(server.stats.requests) == 2
