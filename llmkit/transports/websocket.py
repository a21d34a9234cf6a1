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
* One reader per socket (`_ws_reader`): the receiver waiting for a frame reads it
  itself (leader/follower) and routes others' frames to them; between turns the
  transport's keepalive thread (`_ws_keepalive`) answers pings, notices a close and
  sends client pings. Socket reads are buffered: one system call serves many frames
  (websocket-client alone reads each frame's header, length and payload separately).
* `recv_text`'s timeout bounds the whole wait for the next message (``_ws_frames``).
* Proxies are llmkit's decision (`_proxy`): through a proxy this module opens the
  ``CONNECT`` tunnel itself (and TLS over it for ``wss://``) and hands websocket-client
  the socket, so a refusal is typed (407) and an ``https://`` proxy works; without one,
  websocket-client is told to go direct, since given no proxy it reads ``https_proxy``
  and ``NO_PROXY`` by itself (``trust_env=False`` must mean no proxy).
"""

from __future__ import annotations

import contextlib
import socket
import ssl
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import websocket

from llmkit._deadline import Deadline
from llmkit.exceptions import redact
from llmkit.transports import _proxy, _ws_common as common
from llmkit.transports._tls import http11_only
from llmkit.transports._ws_frames import SocketFrames, limited
from llmkit.transports._ws_keepalive import Keepalive
from llmkit.transports._ws_reader import Reader, Receiver, ReceiverPayloads
from llmkit.transports._ws_routing import Lane
from llmkit.transports.base import LaneEnd

__all__ = ["WebSocketConnection", "WebSocketPayloadStream", "WebSocketTransport"]

_PROBE_READ_TIMEOUT = 0.5

# websocket-client reads https_proxy/http_proxy and NO_PROXY whenever it is given no
# proxy host; a proxy host with a no-proxy list of "*" is its only way to say "direct"
# (the host is then never looked up).
_DIRECT = {"http_proxy_host": "direct.invalid", "http_proxy_port": 1, "http_no_proxy": ["*"]}


class WebSocketConnection(SocketFrames):
    """One open WebSocket, owned by its `Reader`: any number of receivers (one per
    response in flight, by lane) may wait on it from any threads; sends are serialized.

    ``keepalive`` (the transport's) tends the socket while it is idle.
    """

    def __init__(
        self,
        ws: websocket.WebSocket,
        *,
        url: str,
        secrets: Sequence[str],
        keepalive: Keepalive | None = None,
        ping_interval: float | None = None,
    ) -> None:
        super().__init__(ws, url=url, secrets=secrets)
        self.reader = Reader(self, ping_interval=ping_interval)
        """Who reads the socket, and the receivers its frames go to."""
        self._keepalive = keepalive
        if keepalive is not None:
            self.reader.on_idle = keepalive.wake
            keepalive.watch(self)

    @classmethod
    def connect(
        cls,
        url: str,
        *,
        headers: Mapping[str, str],
        timeout: float | None,
        secrets: Sequence[str] = (),
        ssl_context: ssl.SSLContext | None = None,
        keepalive: Keepalive | None = None,
        ping_interval: float | None = None,
        proxy: _proxy.Route | None = None,
    ) -> WebSocketConnection:
        """Open a connection, following same-origin redirects only.

        ``ssl_context`` verifies a ``wss://`` server (None: websocket-client's default,
        the system's CA store); the provider passes the one its HTTP client uses.
        ``keepalive`` tends the socket while idle, with a client ping after
        ``ping_interval`` seconds of idleness (None: none). ``proxy``: the HTTP proxy
        to tunnel through (None: direct, whatever the environment says).

        Raises:
            APIStatusError: the server refused the upgrade with an HTTP status.
            ConnectError: no connection (refused, DNS, TLS, cross-origin redirect, a
                proxy's refusal, ...).
            Timeout: connecting or the handshake took longer than ``timeout``.
        """
        header = [f"{name}: {value}" for name, value in headers.items()]
        errors = common.ConnectErrors(url, secrets, proxy)
        target = url
        sslopt = {} if ssl_context is None else {"context": ssl_context}
        for _ in range(common.MAX_REDIRECTS + 1):
            if ssl_context is not None:
                http11_only(ssl_context)
            ws = limited(
                websocket.WebSocket(
                    # the library's send lock: a reader's pong never splits a request frame
                    sslopt=sslopt,
                    skip_utf8_validation=True,
                    enable_multithread=True,
                )
            )
            try:
                route: dict[str, Any] = (
                    _DIRECT
                    if proxy is None
                    else {"socket": _tunnel(proxy, target, timeout, ssl_context, errors)}
                )
                ws.connect(  # type: ignore[no-untyped-call]
                    target,
                    header=header,
                    timeout=timeout,
                    redirect_limit=0,
                    suppress_origin=True,
                    **route,
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
            return cls(
                ws, url=target, secrets=secrets, keepalive=keepalive, ping_interval=ping_interval
            )
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
        return bool(self._ws.connected) and self.reader.failure is None

    def send_text(self, text: str) -> int:
        """Send one text frame; returns its payload size in bytes. Safe from any
        thread: frames never interleave.

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

    # ------------------------------------------------------------ receivers (the reader)

    def receiver(self, stream_id: Lane = None) -> Receiver:
        """Register a receiver for lane ``stream_id`` (None: the default lane); do it
        before sending the request whose frames it is to get.

        Raises:
            ValueError: the lane already has a receiver, or is being drained.
        """
        return self.reader.receiver(stream_id)

    def payloads(self, bytes_sent: int, deadline: Deadline | None) -> WebSocketPayloadStream:
        """The frames answering the frame just sent (``bytes_sent`` long) on the default
        lane, each waited for at most `idle_timeout`, all of them within ``deadline``;
        closing the stream frees the lane. What arrived before is kept for it."""
        return WebSocketPayloadStream(
            self, bytes_sent=bytes_sent, idle_timeout=self.idle_timeout, deadline=deadline
        )

    def receive(self, stream_id: Lane, deadline: Deadline | None, end: LaneEnd) -> ReceiverPayloads:
        """The frames of lane ``stream_id`` (None: the default lane), registered before
        its request is sent (then ``sent``): each waited for at most `idle_timeout`, all
        within ``deadline``. Closing the stream before ``end.ended()`` drains the lane.

        Raises:
            ValueError: the lane already has a receiver, or is being drained.
        """
        return self.reader.receiver(stream_id).payloads(0, deadline, self.idle_timeout, end)

    def recv_text(self, timeout: float | None) -> str:
        """Wait at most ``timeout`` seconds in all for the next text message on the
        default lane (a receiver for it is registered for the wait).

        Raises:
            Timeout: no complete message in time.
            ConnectionClosed: the peer closed the connection or it broke.
            ProtocolError: a binary frame, or a frame over `MAX_EVENT_SIZE` bytes.
        """
        receiver = self.reader.receiver(None, replace=True)
        try:
            return receiver.next(timeout)
        finally:
            receiver.close()

    # ------------------------------------------------------------ idle (Watched)

    def probe(self) -> bool:
        """Whether an idle connection can take a request, without blocking.

        Anything that arrived while idle is read: a ping is answered, while a close, EOF
        or a late frame (such as an error about the connection's age) means no.
        """
        reader = self.reader
        if not self.connected:
            return False
        reader.service(wait=_PROBE_READ_TIMEOUT)
        if reader.failure is not None or not self._ws.connected:
            self.close()
            return False
        if reader.router.backlog and reader.router.idle:  # a frame of nobody's
            self.close()
            return False
        return True

    @property
    def idle(self) -> bool:
        """No receiver, nothing pending, open: the keepalive tends it."""
        return self.reader.idle and not self._shut

    def selectable(self) -> socket.socket | None:
        """The socket for the keepalive's `select` (None: closed)."""
        sock = self._ws.sock
        return None if self._shut or sock is None else sock

    def wait(self, now: float) -> float | None:
        """Seconds until the keepalive must look at it anyway."""
        return 0.0 if self._buffer else self.reader.heartbeat.wait(now)

    def tend(self, now: float, readable: bool) -> None:
        """The keepalive's turn on an idle socket: read what arrived, then ping it or
        close it when its peer is gone (`Heartbeat.due`)."""
        reader = self.reader
        if readable or self.readable():
            reader.service()
        if not self.idle:
            return
        due = reader.heartbeat.due(now)
        if due == "ping":
            try:
                self._ws.ping()
            except (websocket.WebSocketException, OSError) as exc:
                reader.fail(common.broken())
                del exc
                return
            reader.heartbeat.pinged(now)
        elif due == "dead":
            reader.fail(common.no_pong())

    # ------------------------------------------------------------ closing

    def close(self) -> None:
        """Close the connection at once. Safe to call more than once, from any thread.

        Every receiver still waiting fails (`ConnectionClosed`). A close frame is sent
        when the socket is still up, but nothing is awaited: an abandoned response may
        still be streaming, and its frames are of no use. (The library's own ``close``
        waits for the peer and, once the peer has closed first, returns without closing
        the socket.)
        """
        self.reader.fail(common.broken())

    def shut(self) -> None:
        """Close the socket (the reader calls it once the socket failed)."""
        if self._shut:
            return
        self._shut = True
        if self._keepalive is not None:
            self._keepalive.forget(self)
        if self._ws.connected:
            with contextlib.suppress(websocket.WebSocketException, OSError):
                self._ws.send_close()
        sock = self._ws.sock
        if sock is not None:  # wakes a reader blocked in another thread
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self._ws.shutdown()  # type: ignore[no-untyped-call]

    def __repr__(self) -> str:
        url = redact(self.url, self._secrets)
        return f"WebSocketConnection(url={url!r}, connected={self.connected})"


def _tunnel(
    proxy: _proxy.Route,
    url: str,
    timeout: float | None,
    ssl_context: ssl.SSLContext | None,
    errors: common.ConnectErrors,
) -> socket.socket:
    """A socket to ``url``'s host through ``proxy``'s ``CONNECT`` tunnel, with TLS to the
    host for ``wss://`` (``ssl_context``, else the default), each wait within ``timeout``.

    Raises:
        ConnectError: the proxy refused the tunnel (`ConnectErrors.proxy_refused`) or did
            not answer in HTTP.
        OSError, ssl.SSLError, TimeoutError: as a direct connect would.
    """
    parts = urlsplit(url)
    secure = parts.scheme == "wss"
    host = parts.hostname or ""
    port = parts.port or (443 if secure else 80)
    sock = socket.create_connection((proxy.host, proxy.port), timeout=timeout)
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if proxy.scheme == "https":
            context = proxy.tls if isinstance(proxy.tls, ssl.SSLContext) else None
            context = context or ssl.create_default_context()
            sock = context.wrap_socket(sock, server_hostname=proxy.host)
        sock.sendall(_proxy.connect_request(proxy, host, port))
        status = _proxy.tunnel_status(_read_head(sock))
        if not 200 <= status < 300:
            raise errors.proxy_refused(status)
        if secure:
            context = http11_only(ssl_context or ssl.create_default_context())
            sock = context.wrap_socket(sock, server_hostname=host)
    except BaseException:
        sock.close()
        raise
    return sock


def _read_head(sock: socket.socket) -> bytes:
    """The proxy's answer up to its blank line, read a byte at a time (nothing after it
    is the proxy's), at most `_proxy.MAX_HEAD` bytes."""
    head = bytearray()
    while not head.endswith(b"\r\n\r\n"):
        if len(head) >= _proxy.MAX_HEAD:
            break
        byte = sock.recv(1)
        if not byte:
            break
        head += byte
    return bytes(head)


class WebSocketPayloadStream(ReceiverPayloads):
    """The frames of one response on the default lane (one response at a time): a
    receiver is registered for them, replacing one a previous response left."""

    __slots__ = ()

    def __init__(
        self,
        connection: WebSocketConnection,
        *,
        bytes_sent: int,
        idle_timeout: float | None,
        deadline: Deadline | None = None,
    ) -> None:
        super().__init__(
            connection.reader.receiver(None, replace=True),
            bytes_sent=bytes_sent,
            idle_timeout=idle_timeout,
            deadline=deadline,
        )


class WebSocketTransport(common.Endpoint):
    """Opens WebSocket connections to one endpoint: `HTTPTransport`'s twin for
    WebSocket mode (same arguments as `Endpoint`). Each connection then carries
    responses one after another (`Connection.send_text`, `Connection.payloads`), or
    several at once on lanes (`WebSocketConnection.receiver`).

    One keepalive thread tends the idle connections of the transport; `close` stops it.
    """

    def __init__(self, url: str, **settings: Any) -> None:
        super().__init__(url, **settings)
        self._keepalive = Keepalive()

    def connect(self, deadline: Deadline | None) -> WebSocketConnection:
        """Open a connection within ``deadline`` (see `WebSocketConnection.connect`)."""
        connection = WebSocketConnection.connect(
            self.url,
            **self.connect_args(deadline),
            keepalive=self._keepalive,
            ping_interval=self.keepalive,
        )
        self.opened(connection)
        return connection

    def close(self) -> None:
        """Stop the keepalive thread (the connections are their owners' to close)."""
        self._keepalive.close()
