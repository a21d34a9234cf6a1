"""What both WebSocket transports decide, without a WebSocket library.

websocket-client (threads) and websockets (asyncio) report the same events in their own
shapes; each transport extracts the plain facts (a status and body, a close code and
reason) and hands them here, so the errors a caller sees, the redirect rule and the
limits are one piece of code. The redirect rule itself is `llmkit.transports._origin`,
shared with the HTTP transports.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from llmkit._deadline import Deadline, cap
from llmkit.exceptions import (
    APIStatusError,
    ConnectError,
    ConnectionClosed,
    ProtocolError,
    Timeout,
    redact,
)
from llmkit.transports._error_body import error_from_body
from llmkit.transports._origin import MAX_REDIRECTS, same_origin_redirect
from llmkit.transports._proxy import Route, refused
from llmkit.transports.base import MAX_EVENT_SIZE

__all__ = [
    "CLOSE_ABNORMAL",
    "MAX_REDIRECTS",
    "REDIRECT_STATUSES",
    "ConnectErrors",
    "ConnectionFacts",
    "Endpoint",
    "FrameStream",
    "broken",
    "cause",
    "closed_by_server",
    "invalid_utf8",
    "no_pong",
    "not_text",
    "same_origin_redirect",
    "too_large",
    "unsent",
    "upgrade_error",
]

CLOSE_ABNORMAL = 1006
CLOSE_INTERNAL_ERROR = 1011
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})


class ConnectionFacts:
    """What both connection classes know about themselves: where, since when, secrets."""

    idle_timeout: float | None = None
    """Longest wait for each frame of a response (the transport's read timeout)."""

    def __init__(self, *, url: str, secrets: Sequence[str]) -> None:
        self.url = url
        self._secrets = tuple(secrets)
        self.opened_at = time.monotonic()

    @property
    def secrets(self) -> tuple[str, ...]:
        """What this connection redacts from server text."""
        return self._secrets

    @property
    def age(self) -> float:
        """Seconds since the connection opened."""
        return time.monotonic() - self.opened_at


class Endpoint:
    """What both WebSocket transports are built from: one endpoint and its settings.

    Args:
        url: The ``ws://`` or ``wss://`` URL (`websocket_url` of the base URL).
        headers: Sent with every handshake (the key among them).
        connect_timeout: Longest connect and handshake, in seconds (None: no limit).
        read_timeout: Longest wait for each frame of a response (None: no limit).
        secrets: What to redact from anything shown (the key, credential headers).
        ssl_context: Verifies a ``wss://`` server (None: the library's default).
        keepalive: Seconds of idleness after which a client ping goes out; a socket
            whose peer shows no sign of life as long after it is closed (None: no client
            pings; server pings are answered either way).
        proxy: The HTTP proxy that tunnels every connection (`_proxy.route_for` decided
            it; None: direct, and the libraries' own reading of the environment is
            switched off).
    """

    def __init__(
        self,
        url: str,
        *,
        headers: Mapping[str, str],
        connect_timeout: float | None,
        read_timeout: float | None,
        secrets: Sequence[str] = (),
        ssl_context: ssl.SSLContext | None = None,
        keepalive: float | None = 20.0,
        proxy: Route | None = None,
    ) -> None:
        self.url = url
        self.keepalive = keepalive
        self.proxy = proxy
        self._headers = headers
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._secrets = tuple(secrets)
        self._ssl_context = ssl_context

    def connect_args(self, deadline: Deadline | None) -> dict[str, Any]:
        """The keyword arguments of a connection's ``connect``, within ``deadline``."""
        return {
            "headers": self._headers,
            "timeout": cap(deadline, self._connect_timeout),
            "secrets": self._secrets,
            "ssl_context": self._ssl_context,
            "proxy": self.proxy,
        }

    def opened(self, connection: ConnectionFacts) -> None:
        """Give a new connection the endpoint's read timeout."""
        connection.idle_timeout = self._read_timeout

    def __repr__(self) -> str:
        url = redact(self.url, self._secrets)
        proxy = "" if self.proxy is None else f", proxy={self.proxy.shown!r}"
        return f"{type(self).__name__}(url={url!r}{proxy})"


class SecretHolder(Protocol):
    @property
    def secrets(self) -> tuple[str, ...]: ...


class FrameStream:
    """What the sync and async payload streams of one response share: their facts.

    The connection outlives the stream, so closing the stream leaves it alone: whether
    it is kept or closed is decided by whoever leased it, from the protocol's state.
    ``idle_timeout`` bounds the wait for each frame, ``deadline`` (the call's
    ``max_duration``, None for none) all of them.
    """

    __slots__ = ("_bytes_sent", "_connection", "_deadline", "_idle_timeout", "received")

    def __init__(
        self,
        connection: SecretHolder,
        *,
        bytes_sent: int,
        idle_timeout: float | None,
        deadline: Deadline | None = None,
    ) -> None:
        self._connection = connection
        self._bytes_sent = bytes_sent
        self._idle_timeout = idle_timeout
        self._deadline = deadline
        self.received = 0
        """Frames received so far (a failure is classified by it)."""

    @property
    def bytes_sent(self) -> int:
        """Size of the ``response.create`` frame."""
        return self._bytes_sent

    def sent(self, bytes_sent: int) -> None:
        """The ``response.create`` frame went out, ``bytes_sent`` long."""
        self._bytes_sent = bytes_sent

    @property
    def secrets(self) -> tuple[str, ...]:
        """What to redact from server text that reaches an exception."""
        return self._connection.secrets


def upgrade_error(
    status: int,
    headers: Mapping[str, str],
    body: bytes | bytearray | None,
    secrets: Sequence[str],
) -> APIStatusError:
    """The `APIStatusError` for an upgrade the server refused with ``status``, redacted."""
    fallback = f"the WebSocket upgrade was rejected with status {status}"
    return error_from_body(status, headers, body, secrets, fallback=fallback)


class ConnectErrors:
    """The errors of a failed connect to ``url``, with any key in the URL redacted; a
    connect through ``proxy`` names it (never its credentials), since a failure may be
    the proxy's."""

    def __init__(self, url: str, secrets: Sequence[str], proxy: Route | None = None) -> None:
        self._shown = redact(url, secrets)  # a key can hide in a URL (a gateway's token)
        self._secrets = tuple(secrets)
        self._proxy = proxy
        self._where = self._shown if proxy is None else f"{self._shown} through {_named(proxy)}"

    def timed_out(self) -> Timeout:
        return Timeout(f"connecting to {self._where} timed out")

    def handshake(self, detail: str) -> ConnectError:
        reason = redact(detail, self._secrets)
        return ConnectError(f"WebSocket handshake with {self._where} failed: {reason}")

    def cross_origin(self) -> ConnectError:
        return ConnectError(f"refused a WebSocket redirect from {self._shown} to another origin")

    def too_many_redirects(self) -> ConnectError:
        return ConnectError(f"too many WebSocket redirects from {self._shown}")

    def proxy_refused(self, status: int) -> ConnectError:
        """The proxy answered the tunnel request with ``status`` (407: credentials)."""
        detail = f"HTTP {status} for a tunnel to {self._shown}"
        return refused(status, detail, proxy=_named(self._proxy))

    def unreachable(self, exc: BaseException) -> ConnectError:
        """No connection: the cause (a certificate, DNS, a refusal) is named, redacted."""
        return ConnectError(f"could not connect to {self._where}: {cause(exc, self._secrets)}")


def _named(proxy: Route | None) -> str:
    return "the proxy" if proxy is None else f"the proxy {proxy.shown}"


_CAUSE_CHARS = 300


def cause(exc: BaseException, secrets: Sequence[str]) -> str:
    """``exc`` in a few words for a message: its class and text, redacted and bounded.

    The text says what a class name alone does not: which certificate check failed,
    that a name did not resolve, that the port refused.
    """
    text = redact(str(exc), secrets)[:_CAUSE_CHARS]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def closed_by_server(code: int | None, reason: str, secrets: Sequence[str]) -> ConnectionClosed:
    """The server's close frame (``code`` None when it had no payload)."""
    shown = redact(reason, secrets) or None
    return ConnectionClosed(
        f"the server closed the WebSocket (code {code}{f': {shown}' if shown else ''})",
        code=code,
        reason=shown,
    )


def broken() -> ConnectionClosed:
    """The connection ended without a close frame."""
    return ConnectionClosed("the WebSocket connection broke", code=CLOSE_ABNORMAL)


def no_pong() -> ConnectionClosed:
    """An idle connection's peer did not answer a client ping in time (closed)."""
    return ConnectionClosed(
        "the WebSocket peer did not answer a keepalive ping", code=CLOSE_INTERNAL_ERROR
    )


def unsent() -> ConnectionClosed:
    """The connection was gone when the request frame was sent: nothing was delivered."""
    return ConnectionClosed(
        "the WebSocket was closed before the request could be sent", code=CLOSE_ABNORMAL
    )


def too_large(size: int | None = None) -> ProtocolError:
    """A frame or message over `MAX_EVENT_SIZE` bytes (the connection is closed)."""
    what = "a WebSocket message" if size is None else f"a WebSocket message of {size} bytes"
    return ProtocolError(f"{what} exceeded {MAX_EVENT_SIZE} bytes")


def not_text(kind: str) -> ProtocolError:
    """A frame that is not text (the Responses protocol is text only)."""
    return ProtocolError(f"unexpected WebSocket frame ({kind}); expected text")


def invalid_utf8() -> ProtocolError:
    """A text frame that does not decode."""
    return ProtocolError("a WebSocket text frame is not valid UTF-8")
