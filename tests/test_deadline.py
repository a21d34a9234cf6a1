"""``max_duration``: one deadline over a whole call, on every path (issue 13, item 4),
and durations validated at construction (item 5)."""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hostile import RawServer, hostile_provider, read_head, sse
from loop import RESPONSES_TRANSPORTS, TRANSPORTS, Transport, provider
from portal import PortalProvider

import llmkit
from llmkit._deadline import Deadline, cap
from llmkit.testing import ResponsesServer
from llmkit.transports import _http_send, _http_stream
from llmkit.transports._retry import RetryPolicy
from llmkit.transports.async_http import AsyncHTTPTransport
from llmkit.transports.base import TransportRequest
from llmkit.transports.http import HTTPTransport

SSE_PATHS = [t for t in TRANSPORTS if t != "websocket"]
WORDS = llmkit.Call(" ".join(f"w{i}" for i in range(40)))
"""An echo of some forty deltas: at 0.2 s each, far longer than any deadline below."""


def in_time(started: float, max_duration: float) -> None:
    assert time.monotonic() - started < max_duration + 1.0


def out_of_time(error: llmkit.Timeout) -> None:
    assert "max_duration" in str(error)


# --------------------------------------------------------------------------- 4. the deadline


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_slow_stream_ends_at_the_providers_max_duration_with_its_partial(
    server: ResponsesServer, transport: Transport
) -> None:
    server.token_delay = 0.2
    with provider(server, transport, timeout=30, max_duration=1.5) as p:
        started = time.monotonic()
        with pytest.raises(llmkit.Timeout) as caught:
            p.language_model("scripted").generate(WORDS)
        in_time(started, 1.5)
    out_of_time(caught.value)
    partial = caught.value.partial
    assert partial is not None
    assert partial.text.startswith("Echo: w0")


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_calls_max_duration_overrides_the_providers(
    server: ResponsesServer, transport: Transport
) -> None:
    server.ttft = 5.0  # silent longer than the deadline: a read blocked from the start
    with provider(server, transport, timeout=30, max_duration=60) as p:
        model = p.language_model("scripted")
        started = time.monotonic()
        with pytest.raises(llmkit.Timeout) as caught, model.stream(WORDS, max_duration=1.0) as s:
            for _ in s:
                pass
        in_time(started, 1.0)
    out_of_time(caught.value)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_call_within_its_max_duration_is_unaffected(
    server: ResponsesServer, transport: Transport
) -> None:
    with provider(server, transport, max_duration=30) as p:
        model = p.language_model("scripted")
        assert model.generate(WORDS, max_duration=20).text.startswith("Echo: w0 w1")
        assert model.generate(WORDS).text.startswith("Echo: w0 w1")
        model.warmup(WORDS, max_duration=20)


@pytest.mark.parametrize("transport", [t for t in RESPONSES_TRANSPORTS if t == "websocket"])
def test_the_pool_wait_honours_the_deadline(server: ResponsesServer, transport: Transport) -> None:
    server.token_delay = 0.05
    with provider(server, transport, ws_max_connections=1, timeout=30, ws_lanes=False) as p:
        model = p.language_model("scripted")
        holder = model.stream(WORDS)
        next(iter(holder))  # the only connection is now leased
        started = time.monotonic()
        with pytest.raises(llmkit.Timeout) as caught:
            model.generate(llmkit.Call("blocked"), max_duration=1.0)
        in_time(started, 1.0)
        out_of_time(caught.value)
        with pytest.raises(llmkit.Timeout):
            model.warmup(llmkit.Call("blocked"), max_duration=0.5)
        holder.close()


@pytest.mark.parametrize("transport", [t for t in TRANSPORTS if t == "websocket"])
def test_a_fallback_to_http_keeps_the_calls_deadline(
    server: ResponsesServer, transport: Transport
) -> None:
    server.faults.reject_upgrades(status=503)
    server.token_delay = 0.2
    with provider(server, transport, timeout=30, max_duration=1.5) as p:
        started = time.monotonic()
        with pytest.raises(llmkit.Timeout) as caught:
            p.language_model("scripted").generate(WORDS)
        in_time(started, 1.5)
    out_of_time(caught.value)
    partial = caught.value.partial
    assert partial is not None
    assert partial.metadata.transport == "http"
    assert partial.metadata.fallback_reason
    assert partial.text.startswith("Echo: w0")


def _no_handshake(conn: Any, stop: threading.Event) -> None:
    read_head(conn)
    stop.wait(10)  # the upgrade is never answered


@pytest.mark.parametrize("transport", [t for t in TRANSPORTS if t == "websocket"])
def test_a_websocket_connect_ends_at_the_deadline(transport: Transport) -> None:
    """A connect cut short by the deadline is the deadline's `Timeout`, not a reason to
    fall back to HTTP (nor to cool WebSocket down)."""
    with (
        RawServer(_no_handshake) as server,
        hostile_provider(server.base_url, transport, timeout=30, max_duration=1.0) as p,
    ):
        started = time.monotonic()
        with pytest.raises(llmkit.Timeout) as caught:
            p.language_model("scripted").generate(llmkit.Call("hi"))
        in_time(started, 1.0)
        assert server.connections == 1  # no HTTP fallback
    out_of_time(caught.value)


def _late_then_silent() -> Iterator[bytes]:
    """One chat chunk 1.5 s in, then nothing: the next read starts late."""
    yield b'data: {"choices":[{"index":0,"delta":{"content":"late"}}]}\n\n'
    while True:
        yield b""


@pytest.mark.parametrize("transport", [t for t in SSE_PATHS if t == "chat"])
def test_a_read_started_late_still_ends_at_the_deadline(transport: Transport) -> None:
    """httpx fixes a read's timeout when the request is sent (here: the 2 s left then);
    a read starting 1.5 s later would run to 3.5 s without the watchdog (sync) or the
    per-read deadline (async)."""
    with (
        RawServer(sse(_late_then_silent, 1.5)) as server,
        hostile_provider(server.base_url, transport, timeout=30, max_duration=2.0) as p,
    ):
        started = time.monotonic()
        with pytest.raises(llmkit.Timeout) as caught:
            p.language_model("scripted").generate(llmkit.Call("hi"))
        assert time.monotonic() - started < 3.0
    out_of_time(caught.value)
    assert caught.value.partial is not None
    assert caught.value.partial.text == "late"


def _unavailable(conn: Any, stop: threading.Event) -> None:
    read_head(conn)
    conn.sendall(
        b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 20\r\n"
        b"Content-Length: 0\r\nConnection: close\r\n\r\n"
    )


@pytest.mark.parametrize("transport", SSE_PATHS)
def test_a_retry_back_off_never_sleeps_past_the_deadline(transport: Transport) -> None:
    with (
        RawServer(_unavailable) as server,
        hostile_provider(server.base_url, transport, max_retries=2, max_duration=2.0) as p,
    ):
        started = time.monotonic()
        with pytest.raises(llmkit.Timeout) as caught:
            p.language_model("scripted").generate(llmkit.Call("hi"))
        assert time.monotonic() - started < 2.0  # ended at once, not after 20 s
        assert server.connections == 1
    out_of_time(caught.value)
    assert caught.value.partial is not None  # says how it was sent


# --------------------------------------------------------------------------- 5. validation

BAD_SETTINGS: list[dict[str, Any]] = [
    {"timeout": 0},
    {"timeout": -1},
    {"timeout": math.nan},
    {"timeout": math.inf},
    {"timeout": "5"},
    {"timeout": httpx.Timeout(0)},
    {"timeout": httpx.Timeout(5, read=-1)},
    {"timeout": httpx.Timeout(5, connect=math.nan)},
    {"max_duration": 0},
    {"max_duration": -3},
    {"max_duration": math.inf},
    {"max_duration": True},
    {"ws_max_age": 0},
    {"ws_max_age": math.nan},
    {"ws_cooldown": -1},
    {"ws_cooldown_max": math.inf},
    {"ws_cooldown": 30, "ws_cooldown_max": 10},
]


def _make(is_async: bool, **settings: Any) -> llmkit.Provider | PortalProvider:
    options = {"api_key": "k", "base_url": "http://127.0.0.1:9/v1", **settings}
    return PortalProvider(**options) if is_async else llmkit.Provider(**options)


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize("settings", BAD_SETTINGS, ids=repr)
def test_bad_durations_are_refused_at_construction(
    is_async: bool, settings: dict[str, Any]
) -> None:
    if is_async:  # the portal's loop must not outlive a failed construction
        with pytest.raises(llmkit.UsageError, match="must be"):
            llmkit.AsyncProvider(api_key="k", **settings)
        return
    with pytest.raises(llmkit.UsageError, match="must be"):
        _make(False, **settings)


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_unlimited_parts_of_a_timeout_stay_allowed(is_async: bool) -> None:
    for timeout in (httpx.Timeout(5, read=None), httpx.Timeout(None), 0.5):
        with _make(is_async, timeout=timeout, max_duration=10, ws_cooldown=1) as p:
            assert p.max_duration == 10


@pytest.mark.parametrize("transport", [Transport("chat"), Transport("http", is_async=True)])
def test_a_bad_max_duration_per_call_is_refused_at_once(
    server: ResponsesServer, transport: Transport
) -> None:
    with provider(server, transport) as p:
        model = p.language_model("scripted")
        for bad in (0, -1.0, math.nan):
            with pytest.raises(llmkit.UsageError, match="max_duration"):
                model.generate(llmkit.Call("hi"), max_duration=bad)
        with pytest.raises(llmkit.UsageError, match="max_duration"):
            model.warmup(llmkit.Call("hi"), max_duration=-1)


# --------------------------------------------------------------------------- the pure parts


def test_the_deadline_arithmetic() -> None:
    assert Deadline.start(None) is None
    assert cap(None, 7.0) == 7.0
    deadline = Deadline(30)
    assert not deadline.expired()
    assert 29 < deadline.remaining() <= 30
    assert deadline.cap(5) == 5
    assert 29 < deadline.cap(None) <= 30
    assert 29 < deadline.cap(60) <= 30
    assert deadline.pause(1.5) == 1.5
    with pytest.raises(llmkit.Timeout, match="max_duration of 30 seconds"):
        deadline.pause(31)
    gone = Deadline(0.001)
    time.sleep(0.01)
    assert gone.expired()
    assert gone.remaining() < 0
    with pytest.raises(llmkit.Timeout, match="max_duration"):
        gone.cap(5)
    assert "max_duration" in str(_http_stream.silence(2.0, gone))
    assert "no event for 2 seconds" in str(_http_stream.silence(2.0, deadline))
    assert "max_duration" in str(_http_stream.read_error(httpx.ReadError("x"), gone))
    with pytest.raises(llmkit.Timeout, match="max_duration") as caught:
        _http_send.SendAttempts(RetryPolicy(), (), deadline=gone).send_failed(
            httpx.ConnectError("x")
        )
    assert isinstance(caught.value.__cause__, httpx.ConnectError)


def _chunks(request: httpx.Request) -> httpx.Response:
    body = b'data: {"a":1}\n\n: comment\n\ndata: {"b":2}\n\n'
    return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body)


def test_a_deadline_without_a_socket_to_watch_still_streams_to_the_end() -> None:
    """A custom transport has no socket for the watchdog: the stream still works."""
    transport = HTTPTransport(base_url="http://x", transport=httpx.MockTransport(_chunks))
    request = TransportRequest("/r", {}, deadline=Deadline(30))
    with transport, transport.open(request) as payloads:
        assert list(payloads) == ['{"a":1}', '{"b":2}']


async def _async_stream() -> list[str]:
    transport = AsyncHTTPTransport(
        base_url="http://x", transport=httpx.MockTransport(_chunks), timeout=5
    )
    request = TransportRequest("/r", {}, deadline=Deadline(30))
    async with transport:
        payloads = await transport.open(request)
        async with payloads:
            return [data async for data in payloads]


def test_an_async_deadline_stream_reads_to_the_end() -> None:
    assert asyncio.run(_async_stream()) == ['{"a":1}', '{"b":2}']
