"""The WebSocket transport: one websocket-client connection, text frames in and out.

Framing only. A `WebSocketConnection` sends a text frame and receives text frames; it
maps websocket-client and socket errors onto the llmkit tree at this boundary. What the
frames mean, and when a response is over, is the protocol's business; which connection
serves which conversation is the session's (``llmkit.openai._websocket``).

Choices that matter:

* No incoming size cap (websocket-client has none): a ``response.completed`` echoes the
  whole output and can exceed the 1 MiB other clients default to.
* ``skip_utf8_validation``: websocket-client's own check is pure Python and costs most
  of the per-frame time; decoding the frame to ``str`` validates it anyway, in C.
* Redirects are followed only within the same origin, so credentials never leave it.
* Pings are answered inside `recv_text`; between turns `probe` reads whatever arrived
  while the connection sat idle (a close, a ping, a late error frame) without blocking.
* `recv_text`'s timeout bounds the whole wait for the next message. websocket-client
  answers pings inside its read loop and the socket timeout restarts on every read, so
  a server sending pings, single bytes or endless continuation frames would keep a
  call waiting forever; every socket read therefore gets only what is left of the wait.
"""

from __future__ import annotations

import contextlib
import select
import socket
import ssl
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import websocket

from llmkit._deadline import Deadline
from llmkit.exceptions import ConnectionClosed, LLMKitError, Timeout, redact
from llmkit.transports import _ws_common as common
from llmkit.transports._tls import http11_only
from llmkit.transports.base import MAX_EVENT_SIZE

__all__ = ["WebSocketConnection", "WebSocketPayloadStream", "WebSocketTransport"]

_PROBE_READ_TIMEOUT = 0.5
# A socket read's timeout is shortened to what is left of the wait only once that is
# this much shorter: a message's quick reads cost no extra system call, and a wait
# overruns its bound by this much at most.
_SLACK = 0.05


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


def _limited(ws: websocket.WebSocket) -> websocket.WebSocket:
    ws.frame_buffer = _LimitedFrameBuffer(ws._recv, True)
    ws.cont_frame = _LimitedContinuation(False, True)
    return ws


class WebSocketConnection(common.ConnectionFacts):
    """One open WebSocket. Not thread-safe: one user at a time (the session leases it)."""

    def __init__(self, ws: websocket.WebSocket, *, url: str, secrets: Sequence[str]) -> None:
        super().__init__(url=url, secrets=secrets)
        self._ws = ws
        self._until: float | None = None  # when the current wait ends (monotonic)
        self._sock_timeout: float | None = ws.gettimeout()  # the socket's timeout now
        self._raw_recv: Callable[[int], bytes] = ws._recv
        ws.frame_buffer = _LimitedFrameBuffer(self._recv_bounded, True)

    @classmethod
    def connect(
        cls,
        url: str,
        *,
        headers: Mapping[str, str],
        timeout: float | None,
        secrets: Sequence[str] = (),
        ssl_context: ssl.SSLContext | None = None,
    ) -> WebSocketConnection:
        """Open a connection, following same-origin redirects only.

        ``ssl_context`` verifies a ``wss://`` server (None: websocket-client's default,
        the system's CA store); the provider passes the one its HTTP client uses.

        Raises:
            APIStatusError: the server refused the upgrade with an HTTP status.
            ConnectError: no connection (refused, DNS, TLS, cross-origin redirect, ...).
            Timeout: connecting or the handshake took longer than ``timeout``.
        """
        header = [f"{name}: {value}" for name, value in headers.items()]
        errors = common.ConnectErrors(url, secrets)
        target = url
        sslopt = {} if ssl_context is None else {"context": ssl_context}
        for _ in range(common.MAX_REDIRECTS + 1):
            if ssl_context is not None:
                http11_only(ssl_context)
            ws = _limited(
                websocket.WebSocket(
                    sslopt=sslopt, skip_utf8_validation=True, enable_multithread=False
                )
            )
            try:
                ws.connect(  # type: ignore[no-untyped-call]
                    target,
                    header=header,
                    timeout=timeout,
                    redirect_limit=0,
                    suppress_origin=True,
                )
            except websocket.WebSocketBadStatusException as exc:
                # from None: the library's text has the raw status line, headers and body.
                raise common.upgrade_error(
                    exc.status_code, exc.resp_headers or {}, exc.resp_body, secrets
                ) from None
            except (websocket.WebSocketTimeoutException, TimeoutError) as exc:
                raise errors.timed_out() from exc
            except websocket.WebSocketAddressException as exc:  # DNS
                raise errors.unreachable(exc) from exc
            except websocket.WebSocketException as exc:
                location = cls._redirect_location(ws)
                if location is None:
                    raise errors.handshake(str(exc)) from None
                redirect = common.same_origin_redirect(url, target, location)
                if redirect is None:
                    raise errors.cross_origin() from None
                target = redirect
                continue
            except (OSError, ssl.SSLError) as exc:
                raise errors.unreachable(exc) from exc
            return cls(ws, url=target, secrets=secrets)
        raise errors.too_many_redirects()

    @staticmethod
    def _redirect_location(ws: websocket.WebSocket) -> str | None:
        response = getattr(ws, "handshake_response", None)
        if response is None or response.status not in common.REDIRECT_STATUSES:
            return None
        location = response.headers.get("location")
        return str(location) if location else None

    @property
    def connected(self) -> bool:
        """Whether the socket is still open on this side."""
        return bool(self._ws.connected)

    def send_text(self, text: str) -> int:
        """Send one text frame; returns its payload size in bytes.

        Raises:
            ConnectionClosed: the socket is gone (nothing was delivered).
        """
        data = text.encode("utf-8")
        try:
            self._ws.send(data, websocket.ABNF.OPCODE_TEXT)
        except (websocket.WebSocketException, OSError) as exc:
            self.close()
            raise common.unsent() from exc
        return len(data)

    def _bound(self, timeout: float | None) -> None:
        """Start a wait of at most ``timeout`` seconds (None: unbounded).

        The socket's timeout is set only when it changes: every message of a stream
        waits as long, and setting it costs a system call.
        """
        if timeout != self._sock_timeout:
            self._ws.settimeout(timeout)
            self._sock_timeout = timeout
        self._until = None if timeout is None else time.monotonic() + timeout

    def _recv_bounded(self, size: int) -> bytes:
        """One socket read, within what is left of the current wait (`_bound`)."""
        until = self._until
        if until is not None:
            remaining = until - time.monotonic()
            if self._sock_timeout is not None and remaining < self._sock_timeout - _SLACK:
                if remaining <= 0:
                    raise websocket.WebSocketTimeoutException("the wait ran out")
                self._ws.settimeout(remaining)
                self._sock_timeout = remaining
        return self._raw_recv(size)

    def recv_text(self, timeout: float | None) -> str:
        """Wait at most ``timeout`` seconds in all for the next complete text message.

        Pings (answered here), pongs, partial frames and continuation frames do not
        extend the wait: ``timeout`` bounds it as a whole.

        Raises:
            Timeout: no complete message in time.
            ConnectionClosed: the peer closed the connection or it broke.
            ProtocolError: a binary frame (the Responses protocol is text only), or a
                frame over `MAX_EVENT_SIZE` bytes (the connection is closed).
        """
        try:
            self._bound(timeout)
            opcode, frame = self._ws.recv_data_frame(False)
        except (websocket.WebSocketTimeoutException, TimeoutError) as exc:
            raise Timeout(f"no WebSocket event for {timeout} seconds") from exc
        except _FrameTooLarge as exc:
            self.close()
            raise common.too_large(exc.args[0]) from None
        except (websocket.WebSocketException, OSError) as exc:
            self.close()
            raise common.broken() from exc
        if opcode == websocket.ABNF.OPCODE_TEXT:
            data = frame.data
            if len(data) > MAX_EVENT_SIZE:
                self.close()
                raise common.too_large(len(data))
            try:
                return data if isinstance(data, str) else data.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise common.invalid_utf8() from exc
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            raise self._closed(bytes(frame.data))
        raise common.not_text(f"opcode {opcode}")

    def _closed(self, data: bytes) -> ConnectionClosed:
        self.close()
        code = int.from_bytes(data[:2], "big") if len(data) >= 2 else None
        reason = data[2:].decode("utf-8", errors="replace")
        return common.closed_by_server(code, reason, self._secrets)

    def probe(self) -> bool:
        """Whether an idle connection can take a request, without blocking.

        Anything that arrived while idle is read: a ping is answered, while a close, EOF
        or a late frame (such as an error about the connection's age) means no.
        """
        if not self._ws.connected:
            return False
        sock = self._ws.sock
        try:
            while self._readable(sock):
                opcode, _ = self._recv_control()
                if opcode not in (websocket.ABNF.OPCODE_PING, websocket.ABNF.OPCODE_PONG):
                    self.close()
                    return False
        except (LLMKitError, websocket.WebSocketException, OSError, ValueError):
            self.close()
            return False
        return True

    @staticmethod
    def _readable(sock: socket.socket | None) -> bool:
        if sock is None:
            raise ValueError("socket is gone")
        if isinstance(sock, ssl.SSLSocket) and sock.pending():
            return True
        readable, _, _ = select.select([sock], [], [], 0)
        return bool(readable)

    def _recv_control(self) -> tuple[int, Any]:
        self._bound(_PROBE_READ_TIMEOUT)
        return self._ws.recv_data_frame(True)

    def close(self) -> None:
        """Close the connection at once. Safe to call more than once.

        A close frame is sent when the socket is still up, but nothing is awaited: an
        abandoned response may still be streaming, and its frames are of no use. (The
        library's own ``close`` waits for the peer and, once the peer has closed first,
        returns without closing the socket.)
        """
        if self._ws.connected:
            with contextlib.suppress(websocket.WebSocketException, OSError):
                self._ws.send_close()
        self._ws.shutdown()  # type: ignore[no-untyped-call]

    def payloads(self, bytes_sent: int, deadline: Deadline | None) -> WebSocketPayloadStream:
        """The frames answering the frame just sent (``bytes_sent`` long), each waited
        for at most `idle_timeout`, all of them within ``deadline``."""
        return WebSocketPayloadStream(
            self, bytes_sent=bytes_sent, idle_timeout=self.idle_timeout, deadline=deadline
        )

    def __repr__(self) -> str:
        url = redact(self.url, self._secrets)
        return f"WebSocketConnection(url={url!r}, connected={self.connected})"


class WebSocketPayloadStream(common.FrameStream):
    """The frames of one response on a connection: iterate until the protocol is done.

    Each wait is the idle timeout, shortened to what the call's deadline leaves.
    """

    __slots__ = ()
    _connection: WebSocketConnection

    def __iter__(self) -> Iterator[str]:
        recv, idle, deadline = self._connection.recv_text, self._idle_timeout, self._deadline
        if deadline is None:
            while True:
                payload = recv(idle)
                self.received += 1
                yield payload
        while True:
            payload = _within(deadline, recv, idle)
            self.received += 1
            yield payload

    def close(self) -> None:
        """Nothing to release: the connection belongs to its lease."""


def _within(deadline: Deadline, recv: Callable[[float | None], str], idle: float | None) -> str:
    """``recv(idle)``, the wait shortened to the deadline; its `Timeout` when that ran out."""
    try:
        return recv(deadline.cap(idle))
    except Timeout as exc:
        if deadline.expired():
            raise deadline.error() from exc
        raise


class WebSocketTransport(common.Endpoint):
    """Opens WebSocket connections to one endpoint: `HTTPTransport`'s twin for
    WebSocket mode (same arguments as `Endpoint`). Each connection then carries
    responses one after another: `Connection.send_text`, `Connection.payloads`."""

    def connect(self, deadline: Deadline | None) -> WebSocketConnection:
        """Open a connection within ``deadline`` (see `WebSocketConnection.connect`)."""
        connection = WebSocketConnection.connect(self.url, **self.connect_args(deadline))
        self.opened(connection)
        return connection
