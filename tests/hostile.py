"""Hostile loopback servers for the liveness tests: raw sockets, scripted byte by byte.

A `RawServer` accepts connections on 127.0.0.1 and runs a script on each, on its own
thread. Scripts stop when the client goes away, when the server closes, or after a
bounded number of steps, so no test can leave a thread running.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import socket
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Self

from loop import API_KEY, Transport
from portal import PortalProvider

import llmkit

Script = Callable[[socket.socket, threading.Event], None]

TIMEOUT = 2.0
"""The silence a hostile provider allows; every hostile server must be cut off after it."""
STEPS = 200
"""Most pieces a trickling script sends (at 0.1 s or more each: longer than any test)."""


class RawServer:
    """A TCP server on 127.0.0.1 running ``script`` for every connection."""

    def __init__(self, script: Script) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self.port = self._listener.getsockname()[1]
        self.connections = 0
        self._script = script
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._accepting = threading.Thread(target=self._accept, daemon=True)
        self._accepting.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            conn.settimeout(5)
            self._script(conn, self._stop)

    def close(self) -> None:
        self._stop.set()
        self._accepting.join(5)
        self._listener.close()
        for thread in self._threads:
            thread.join(5)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def read_head(conn: socket.socket) -> bytes:
    """Read up to the end of the request's headers (and return them)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            raise OSError("the client went away")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(rest) < length:
        chunk = conn.recv(65536)
        if not chunk:
            raise OSError("the client went away")
        rest += chunk
    return head


def trickle(
    conn: socket.socket, stop: threading.Event, pieces: Iterable[bytes], interval: float
) -> None:
    """Send ``pieces`` one by one, ``interval`` seconds apart, at most `STEPS` of them."""
    for _, piece in zip(range(STEPS), pieces, strict=False):
        if stop.wait(interval):
            return
        conn.sendall(piece)


SSE_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n"


def sse(pieces: Callable[[], Iterable[bytes]], interval: float, head: bytes = b"") -> Script:
    """An HTTP server answering every request with an event stream that trickles
    ``pieces()`` (its body ends when the connection closes)."""

    def script(conn: socket.socket, stop: threading.Event) -> None:
        read_head(conn)
        conn.sendall(SSE_HEAD + head + b"\r\n")
        trickle(conn, stop, pieces(), interval)

    return script


def forever(piece: bytes) -> Iterator[bytes]:
    while True:
        yield piece


@functools.cache
def gzip_bomb(blocks: int = 1024, block: int = 1 << 20) -> bytes:
    """A valid gzip body of ``blocks`` MiB of newlines (1 GiB in about 1 MB).

    Made in a second: after a full flush the compressor's state is reset, so every
    further megabyte compresses to the same bytes; only the trailer (CRC, size) is
    computed for the whole.
    """
    data = b"\n" * block
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    head = compressor.compress(data) + compressor.flush(zlib.Z_FULL_FLUSH)
    middle = compressor.compress(data) + compressor.flush(zlib.Z_FULL_FLUSH)
    tail = compressor.compress(data) + compressor.flush(zlib.Z_FINISH)
    crc = 0
    for _ in range(blocks):
        crc = zlib.crc32(data, crc)
    trailer = struct.pack("<II", crc, (blocks * block) & 0xFFFFFFFF)
    return head + middle * (blocks - 2) + tail[:-8] + trailer


def bomb_script(conn: socket.socket, stop: threading.Event) -> None:
    """An event stream whose gzip body expands to a gigabyte of blank lines."""
    read_head(conn)
    body = gzip_bomb()
    conn.sendall(
        SSE_HEAD + b"Content-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    )


def gzip_trickle_script(conn: socket.socket, stop: threading.Event) -> None:
    """An event stream of gzip-compressed blank lines, flushed a few at a time."""
    read_head(conn)
    conn.sendall(SSE_HEAD + b"Content-Encoding: gzip\r\n\r\n")
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    pieces = (
        compressor.compress(b"\n\n\n") + compressor.flush(zlib.Z_SYNC_FLUSH) for _ in forever(b"")
    )
    trickle(conn, stop, pieces, 0.2)


# --------------------------------------------------------------------------- WebSocket

_WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def _accept_key(head: bytes) -> bytes:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"sec-websocket-key":
            return base64.b64encode(hashlib.sha1(value.strip() + _WS_GUID).digest())
    raise OSError("no Sec-WebSocket-Key")


def websocket(pieces: Callable[[], Iterable[bytes]], interval: float) -> Script:
    """A WebSocket server that takes the upgrade, waits for the request frame, then
    trickles ``pieces()`` (raw frame bytes) and never sends a whole message."""

    def script(conn: socket.socket, stop: threading.Event) -> None:
        head = read_head(conn)
        conn.sendall(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + _accept_key(head) + b"\r\n\r\n"
        )
        conn.recv(65536)  # the start of the response.create frame
        deadline = time.monotonic() + 30
        conn.settimeout(0.05)

        def drained() -> Iterator[bytes]:
            for piece in pieces():
                with contextlib.suppress(TimeoutError):  # pongs: read and ignored
                    if conn.recv(65536) == b"" or time.monotonic() > deadline:
                        return
                yield piece

        trickle(conn, stop, drained(), interval)

    return script


PING = b"\x89\x00"
"""A ping frame with no payload."""


def one_byte_a_time() -> Iterator[bytes]:
    """A text frame announcing 1000 bytes, then its payload one byte at a time."""
    yield b"\x81\x7e\x03\xe8"
    yield from forever(b"x")


def endless_continuation() -> Iterator[bytes]:
    """A text frame without FIN, then continuation frames without FIN, forever."""
    yield b"\x01\x01x"
    yield from forever(b"\x00\x01x")


def hostile_provider(
    base_url: str, transport: Transport, **overrides: Any
) -> llmkit.Provider | PortalProvider:
    """A provider for a hostile server over ``transport``: no retries, `TIMEOUT`."""
    settings: dict[str, Any] = {
        "api_key": API_KEY,
        "max_retries": 0,
        "base_url": base_url,
        "use_responses_api": transport != "chat",
        "websocket": transport == "websocket",
        "timeout": TIMEOUT,
        **overrides,
    }
    return PortalProvider(**settings) if transport.is_async else llmkit.Provider(**settings)
