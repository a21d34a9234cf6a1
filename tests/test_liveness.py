"""Calls must end: hostile servers that keep a connection busy without ever sending an
event (pings, comments, single bytes, blank lines, a decompression bomb) end the call
with a typed error within the timeout, on every path, sync and async (issue 13, 1-3).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable, Iterator

import pytest
from hostile import (
    PING,
    RawServer,
    Script,
    bomb_script,
    endless_continuation,
    forever,
    gzip_trickle_script,
    hostile_provider,
    one_byte_a_time,
    sse,
    websocket,
)
from loop import TRANSPORTS, Transport

import llmkit
from llmkit.transports._sse import SSEParser

BOUND = 10.0
"""Seconds within which every call against a hostile server has ended."""
CALL = llmkit.Call("hello")
SSE_PATHS = [t for t in TRANSPORTS if t != "websocket"]
WS_PATHS = [t for t in TRANSPORTS if t == "websocket"]


def ends_with(
    script: Script, transport: Transport, error: type[llmkit.LLMKitError]
) -> llmkit.LLMKitError:
    """Run one call against ``script``; it must raise ``error`` within `BOUND` seconds."""
    with RawServer(script) as server, hostile_provider(server.base_url, transport) as provider:
        model = provider.language_model("scripted")
        started = time.monotonic()
        with pytest.raises(error) as caught:
            model.generate(CALL)
        assert time.monotonic() - started < BOUND
        return caught.value


# --------------------------------------------------------------------------- 1. WebSocket

WS_SERVERS: dict[str, Callable[[], Iterable[bytes]]] = {
    "pings": lambda: forever(PING),
    "one-byte-a-time": one_byte_a_time,
    "endless-continuation": endless_continuation,
}


@pytest.mark.parametrize("transport", WS_PATHS)
@pytest.mark.parametrize("behaviour", list(WS_SERVERS))
def test_a_websocket_server_that_never_completes_a_message_times_out(
    transport: Transport, behaviour: str
) -> None:
    """Pings, pongs, partial and continuation frames do not extend the wait: websocket-
    client answers pings inside its read loop and restarted the socket timeout on every
    read, so a sync call against these servers used to wait forever."""
    ends_with(websocket(WS_SERVERS[behaviour], 0.3), transport, llmkit.Timeout)


def test_recv_text_bounds_the_whole_wait_for_a_message() -> None:
    """The transport itself: one `recv_text` against a server that pings every 0.1 s."""
    from llmkit.transports.websocket import WebSocketConnection

    with RawServer(websocket(lambda: forever(PING), 0.1)) as server:
        connection = WebSocketConnection.connect(
            f"ws://127.0.0.1:{server.port}/v1/responses", headers={}, timeout=5
        )
        try:
            connection.send_text("{}")
            started = time.monotonic()
            with pytest.raises(llmkit.Timeout):
                connection.recv_text(0.5)
            assert time.monotonic() - started < 3
        finally:
            connection.close()


def test_a_burst_of_pings_longer_than_the_wait_still_ends_it() -> None:
    """Twenty thousand pings at once take longer to answer than the wait: the read
    that starts after the wait ran out ends it, though data is waiting."""
    from llmkit.transports.websocket import WebSocketConnection

    pieces = lambda: itertools.chain([PING * 20_000], forever(b""))  # noqa: E731
    with RawServer(websocket(pieces, 0.3)) as server:
        connection = WebSocketConnection.connect(
            f"ws://127.0.0.1:{server.port}/v1/responses", headers={}, timeout=5
        )
        try:
            connection.send_text("{}")
            time.sleep(0.5)  # the burst has arrived
            started = time.monotonic()
            with pytest.raises(llmkit.Timeout):
                connection.recv_text(0.06)
            assert time.monotonic() - started < 3
        finally:
            connection.close()


# --------------------------------------------------------------------------- 2. SSE


def _bytes_one_by_one(data: Iterable[int]) -> Iterator[bytes]:
    return (bytes([byte]) for byte in data)


SSE_SERVERS: dict[str, Callable[[], Iterable[bytes]]] = {
    "comments": lambda: forever(b": keepalive\n\n"),
    "blank-lines": lambda: forever(b"\n"),
    "one-byte-a-time": lambda: _bytes_one_by_one(
        itertools.chain(b"data: ", itertools.repeat(ord("x")))
    ),
}


@pytest.mark.parametrize("transport", SSE_PATHS)
@pytest.mark.parametrize("behaviour", list(SSE_SERVERS))
def test_an_event_stream_without_events_times_out(transport: Transport, behaviour: str) -> None:
    """Only an event with data ends a silence: comments, blank lines and partial lines
    arriving faster than the read timeout used to keep a call alive forever."""
    error = ends_with(sse(SSE_SERVERS[behaviour], 0.3), transport, llmkit.Timeout)
    assert "no event for 2 seconds" in str(error)
    assert error.partial is not None


def test_comments_between_events_do_not_count_but_events_do() -> None:
    """Events every 0.5 s with comments between them are alive with a 2 s timeout; the
    silence is measured from the last event, not from the last byte."""

    def pieces() -> Iterator[bytes]:
        for _ in range(3):
            yield b": waiting\n\n"
            yield b'data: {"choices":[{"index":0,"delta":{"content":"a"}}]}\n\n'
        yield b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n'
        yield b"data: [DONE]\n\n"

    transport = Transport("chat")
    with RawServer(sse(pieces, 0.25)) as server, hostile_provider(server.base_url, transport) as p:
        assert p.language_model("scripted").generate(CALL).text == "aaa"


# --------------------------------------------------------------------------- 3. gzip


@pytest.mark.parametrize("transport", SSE_PATHS)
def test_a_decompression_bomb_of_blank_lines_ends_quickly(transport: Transport) -> None:
    """1 MB of gzip expanding to 1 GiB of newlines: the bytes without an event are
    bounded (a `ProtocolError` after `MAX_EVENT_SIZE`), and blank lines are cheap."""
    error = ends_with(bomb_script, transport, llmkit.LLMKitError)
    assert isinstance(error, llmkit.ProtocolError | llmkit.Timeout)


@pytest.mark.parametrize("transport", SSE_PATHS)
def test_gzip_compressed_blank_lines_trickling_time_out(transport: Transport) -> None:
    ends_with(gzip_trickle_script, transport, llmkit.Timeout)


def test_runs_of_blank_lines_are_cheap_and_bounded() -> None:
    """The parser alone: 32 MiB of newlines in one chunk is one C-speed scan, and more
    characters than the limit without an event is refused."""
    parser = SSEParser(max_event_size=64 << 20)
    started = time.process_time()
    assert parser.feed("\n" * (32 << 20)) == []
    assert time.process_time() - started < 2  # the spec path took ~9 s per 32 MiB
    assert parser.feed("data: a\n\n") == ["a"]
    small = SSEParser(max_event_size=100)
    with pytest.raises(llmkit.ProtocolError, match="exceeded 100"):
        for _ in range(10):
            small.feed(": comment\n\n\n\n")


def test_line_endings_are_unified_across_chunks() -> None:
    parser = SSEParser()
    chunks = ["data: a\r", "\n\r", "\ndata: b\r\r", "", "\ndata: c\r\n", "\r\n"]
    assert [data for chunk in chunks for data in parser.feed(chunk)] == ["a", "b", "c"]
