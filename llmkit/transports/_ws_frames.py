"""websocket-client framing for `WebSocketConnection`: bounded, buffered reads of whole
messages, and the frame size limit.

* `read_text`'s wait (`bound`) bounds the whole wait for the next message. websocket-client
  answers pings inside its read loop and the socket timeout restarts on every read, so
  a server sending pings, single bytes or endless continuation frames would keep a
  call waiting forever; every socket read therefore gets only what is left of the wait.
* Socket reads are buffered: websocket-client reads each frame's header, length and
  payload with separate calls; here one system call serves every frame that arrived
  together.
* A frame (or a message of continuation frames) over `MAX_EVENT_SIZE` is refused by the
  length in its header, before its payload is read.
"""

from __future__ import annotations

import select
import ssl
import time
from collections.abc import Callable, Sequence
from typing import Any

import websocket

from llmkit.exceptions import ConnectionClosed, Timeout
from llmkit.transports import _ws_common as common
from llmkit.transports.base import MAX_EVENT_SIZE

__all__ = ["SocketFrames", "limited"]

# A socket read's timeout is shortened to what is left of the wait only once that is
# this much shorter: a message's quick reads cost no extra system call, and a wait
# overruns its bound by this much at most.
_SLACK = 0.05
_CHUNK = 65536  # one socket read serves the frames that arrived together


class _FrameTooLarge(Exception):
    """A frame (or a message of continuation frames) announced more than the limit."""


class _LimitedFrameBuffer(websocket._abnf.frame_buffer):
    """websocket-client's frame reader, refusing a frame by the length in its header,
    before reading (and allocating) the payload."""

    def recv_length(self) -> None:
        super().recv_length()
        if self.length is not None and self.length > MAX_EVENT_SIZE:
            raise _FrameTooLarge(self.length)


class _LimitedContinuation(websocket._abnf.continuous_frame):
    """websocket-client's continuation assembly, refusing a message beyond the limit."""

    def add(self, frame: websocket.ABNF) -> None:
        super().add(frame)
        if self.cont_data and len(self.cont_data[1]) > MAX_EVENT_SIZE:
            raise _FrameTooLarge(len(self.cont_data[1]))


def limited(ws: websocket.WebSocket) -> websocket.WebSocket:
    ws.frame_buffer = _LimitedFrameBuffer(ws._recv, True)
    ws.cont_frame = _LimitedContinuation(False, True)
    return ws


class SocketFrames(common.ConnectionFacts):
    """The reads of one websocket-client connection (`_ws_reader.FrameSocket`)."""

    def __init__(self, ws: websocket.WebSocket, *, url: str, secrets: Sequence[str]) -> None:
        super().__init__(url=url, secrets=secrets)
        self._ws = ws
        self._until: float | None = None  # when the current wait ends (monotonic)
        self._wait: float | None = None  # how long the current wait is
        self._sock_timeout: float | None = ws.gettimeout()  # the socket's timeout now
        self._raw_recv: Callable[[int], bytes] = ws._recv
        self._buffer = b""  # bytes read from the socket, not yet framed
        self._shut = False
        ws.frame_buffer = _LimitedFrameBuffer(self._recv_bounded, True)

    def shut(self) -> None:
        """Close the socket at once."""
        raise NotImplementedError  # pragma: no cover - the connection closes

    @property
    def open(self) -> bool:
        """Whether the socket is open (the reader may not have noticed a failure yet)."""
        return bool(self._ws.connected) and not self._shut

    def bound(self, timeout: float | None) -> None:
        """Start a wait of at most ``timeout`` seconds (None: unbounded).

        The socket's timeout is set only when it changes: every message of a stream
        waits as long, and setting it costs a system call.
        """
        if timeout != self._sock_timeout:
            self._ws.settimeout(timeout)
            self._sock_timeout = timeout
        self._wait = timeout
        self._until = None if timeout is None else time.monotonic() + timeout

    def _recv_bounded(self, size: int) -> bytes:
        """Up to ``size`` bytes: from the buffer, else one socket read within what is
        left of the current wait (`bound`), its surplus buffered."""
        buffered = self._buffer
        if buffered:
            if len(buffered) <= size:
                self._buffer = b""
                return buffered
            self._buffer = buffered[size:]
            return buffered[:size]
        until = self._until
        if until is not None:
            remaining = until - time.monotonic()
            if self._sock_timeout is not None and remaining < self._sock_timeout - _SLACK:
                if remaining <= 0:
                    raise websocket.WebSocketTimeoutException("the wait ran out")
                self._ws.settimeout(remaining)
                self._sock_timeout = remaining
        if size >= _CHUNK:
            return self._raw_recv(size)
        data = self._raw_recv(_CHUNK)
        if len(data) > size:
            self._buffer = data[size:]
            return data[:size]
        return data

    def read_text(self) -> str:
        """The next complete text message, within the wait `bound` started.

        Pings (answered here), pongs, partial frames and continuation frames do not
        extend the wait: it bounds the message as a whole.

        Raises:
            Timeout: no complete message in time.
            ConnectionClosed: the peer closed the connection or it broke (closed).
            ProtocolError: a binary frame (the Responses protocol is text only), a frame
                over `MAX_EVENT_SIZE` bytes or one that is not UTF-8.
        """
        opcode, data = self._frame(False)
        if opcode == websocket.ABNF.OPCODE_TEXT:
            return self._text(data)
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            raise self._closed(bytes(data))
        raise common.not_text(f"opcode {opcode}")

    def read_any(self) -> str | None:
        """The next frame: a text message, or None for a ping (answered) or a pong."""
        opcode, data = self._frame(True)
        if opcode in (websocket.ABNF.OPCODE_PING, websocket.ABNF.OPCODE_PONG):
            return None
        if opcode == websocket.ABNF.OPCODE_TEXT:
            return self._text(data)
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            raise self._closed(bytes(data))
        raise common.not_text(f"opcode {opcode}")

    def _frame(self, control: bool) -> tuple[int, Any]:
        try:
            opcode, frame = self._ws.recv_data_frame(control)
        except (websocket.WebSocketTimeoutException, TimeoutError) as exc:
            raise Timeout(f"no WebSocket event for {self._wait} seconds") from exc
        except _FrameTooLarge as exc:
            self.shut()
            raise common.too_large(exc.args[0]) from None
        except (websocket.WebSocketException, OSError) as exc:
            self.shut()
            raise common.broken() from exc
        return opcode, frame.data

    def _text(self, data: str | bytes) -> str:
        if len(data) > MAX_EVENT_SIZE:
            self.shut()
            raise common.too_large(len(data))
        try:
            return data if isinstance(data, str) else data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise common.invalid_utf8() from exc

    def _closed(self, data: bytes) -> ConnectionClosed:
        self.shut()
        code = int.from_bytes(data[:2], "big") if len(data) >= 2 else None
        reason = data[2:].decode("utf-8", errors="replace")
        return common.closed_by_server(code, reason, self._secrets)

    def readable(self) -> bool:
        """Whether a read would find bytes now (buffered, TLS or socket), not blocking."""
        if self._buffer:
            return True
        sock = self._ws.sock
        if sock is None:
            return False
        if isinstance(sock, ssl.SSLSocket) and sock.pending():
            return True
        try:
            readable, _, _ = select.select([sock], [], [], 0)
        except (OSError, ValueError):
            return True  # closed meanwhile: the read will say so
        return bool(readable)
