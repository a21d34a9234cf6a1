"""The asyncio WebSocket transport: one `websockets` connection, text frames in and out.

The async twin of `llmkit.transports.websocket`, and framing only. What a refused
upgrade, a close frame or an oversized message means, and which redirects are followed,
is decided in ``_ws_common`` for both; this module maps the websockets package's
exceptions onto those facts.

Choices that matter:

* ``max_size`` is `MAX_EVENT_SIZE`: websockets refuses a larger frame by the length in
  its header and closes with 1009, which becomes the same `ProtocolError` as on the
  sync side.
* No compression: the request frame is the same bytes as on the sync transport
  (websocket-client has no permessage-deflate), so ``bytes_sent`` means the same.
* Redirects stay within the origin. websockets alone would follow a cross-origin one
  and strip only ``Authorization``, not an Azure ``api-key``.
* Pings are answered by websockets' background reader, idle or not; its keep-alive
  pings (``ping_interval``/``ping_timeout``) are the transport's ``keepalive`` (None:
  none), so a dead peer is found between turns and `probe` sees the close.
* One reader per socket (`_async_ws_reader`): the receiver awaiting a frame calls
  ``recv`` itself and routes others' frames to them (websockets allows one ``recv``
  at a time).
* websockets logs every handshake header at DEBUG; its client logger is wrapped so
  that the credentials are redacted there too.
* Proxies are llmkit's decision (`_proxy`): websockets gets the proxy (``proxy=``, and
  ``proxy_ssl`` for an ``https://`` one) or ``proxy=None``, never its default ``True``,
  with which it reads the environment by itself (and prefers a SOCKS proxy).
* `close` is synchronous: it writes a close frame when it can and closes the socket
  without waiting, so a cancelled task can call it from ``finally`` (an ``await`` there
  could be cancelled again and leak the socket).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Mapping, Sequence
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import (
    ConnectionClosed,
    InvalidHandshake,
    InvalidProxyStatus,
    InvalidStatus,
    InvalidURI,
)
from websockets.frames import CloseCode
from websockets.protocol import State

from llmkit._deadline import Deadline
from llmkit.exceptions import LLMKitError, Timeout, redact
from llmkit.transports import _proxy, _ws_common as common
from llmkit.transports._async_ws_reader import AsyncReader, AsyncReceiver, AsyncReceiverPayloads
from llmkit.transports._tls import http11_only
from llmkit.transports._ws_routing import Lane
from llmkit.transports.base import MAX_EVENT_SIZE, LaneEnd

__all__ = ["AsyncWebSocketConnection", "AsyncWebSocketPayloadStream", "AsyncWebSocketTransport"]


class _RedirectRefused(Exception):
    """A redirect the origin rule (or the redirect limit) does not allow."""


class _Connect(connect):
    """websockets' connect, following only same-origin redirects, at most three."""

    def __init__(self, uri: str, **kwargs: object) -> None:
        super().__init__(uri, **kwargs)  # type: ignore[arg-type]
        self._origin_url = uri
        self._redirects = 0

    def process_redirect(self, exc: Exception) -> Exception | str:
        if isinstance(exc, InvalidStatus) and (
            exc.response.status_code not in common.REDIRECT_STATUSES  # 300 is not followed
        ):
            return exc
        result = super().process_redirect(exc)
        if not isinstance(result, str):
            return result
        self._redirects += 1
        if self._redirects > common.MAX_REDIRECTS:
            return _RedirectRefused("too many")
        if common.same_origin_redirect(self._origin_url, self.uri, result) is None:
            return _RedirectRefused("cross-origin")
        return result


class _RedactingLogger(logging.LoggerAdapter[logging.Logger]):
    """websockets' client logger with the connection's secrets redacted: at DEBUG it
    logs every handshake header, ``Authorization`` and ``api-key`` included."""

    def __init__(self, secrets: Sequence[str]) -> None:
        super().__init__(logging.getLogger("websockets.client"))
        self._secrets = tuple(secrets)

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        if self.isEnabledFor(level):
            text = str(msg) % args if args else str(msg)
            kwargs.setdefault("stacklevel", 2)
            self.logger.log(level, "%s", redact(text, self._secrets), **kwargs)


class AsyncWebSocketConnection(common.ConnectionFacts):
    """One open WebSocket on the running event loop, owned by its `AsyncReader`: any
    number of receivers (one per response in flight, by lane) may await it."""

    def __init__(self, ws: ClientConnection, *, url: str, secrets: Sequence[str]) -> None:
        super().__init__(url=url, secrets=secrets)
        self._ws = ws
        self.reader = AsyncReader(self)
        """Who reads the socket, and the receivers its frames go to."""

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        headers: Mapping[str, str],
        timeout: float | None,
        secrets: Sequence[str] = (),
        ssl_context: ssl.SSLContext | None = None,
        ping_interval: float | None = 20.0,
        proxy: _proxy.Route | None = None,
    ) -> AsyncWebSocketConnection:
        """As `WebSocketConnection.connect`: same-origin redirects only; raises
        `APIStatusError` for a refused upgrade, else `ConnectError` or `Timeout`.
        ``ssl_context`` verifies a ``wss://`` server (None: websockets' default).
        ``ping_interval``: a client ping this often, and the socket closed when its
        pong is as late (None: no client pings). ``proxy``: the HTTP proxy to tunnel
        through (None: direct, whatever the environment says)."""
        errors = common.ConnectErrors(url, secrets, proxy)
        # websockets refuses ssl for ws:// and ssl=None for wss://; redirects keep the
        # scheme (the origin rule).
        tls: dict[str, Any] = {}
        if ssl_context is not None and url.startswith("wss:"):
            tls["ssl"] = http11_only(ssl_context)
        if proxy is not None and proxy.scheme == "https":
            tls["proxy_ssl"] = proxy.tls if isinstance(proxy.tls, ssl.SSLContext) else True
        opener = _Connect(
            url,
            **tls,
            additional_headers=dict(headers),
            user_agent_header=None,
            open_timeout=timeout,
            max_size=MAX_EVENT_SIZE,
            compression=None,
            ping_interval=ping_interval,
            ping_timeout=ping_interval,
            logger=_RedactingLogger(secrets),
            proxy=None if proxy is None else proxy.url,
        )
        try:
            ws = await opener
        except InvalidStatus as exc:
            response = exc.response
            if 300 <= response.status_code < 400:  # 300, or a redirect with no Location
                raise errors.handshake(f"redirect {response.status_code}") from None
            raise common.upgrade_error(
                response.status_code, response.headers, response.body, secrets
            ) from None
        except InvalidProxyStatus as exc:
            raise errors.proxy_refused(exc.response.status_code) from None
        except _RedirectRefused as exc:
            if exc.args == ("too many",):
                raise errors.too_many_redirects() from None
            raise errors.cross_origin() from None
        except TimeoutError as exc:
            raise errors.timed_out() from exc
        except (InvalidHandshake, InvalidURI) as exc:
            raise errors.handshake(str(exc)) from None
        except OSError as exc:  # refused, DNS, TLS (ssl.SSLError is an OSError)
            raise errors.unreachable(exc) from exc
        return cls(ws, url=opener.uri, secrets=secrets)  # where redirects led

    @property
    def connected(self) -> bool:
        """Whether the connection is open on this side."""
        return self._ws.state is State.OPEN and self.reader.failure is None

    async def send_text(self, text: str) -> int:
        """Send one text frame; returns its payload size in bytes.

        Raises:
            ConnectionClosed: the connection is gone (nothing was delivered).
        """
        data = text.encode("utf-8")
        try:
            await self._ws.send(data, text=True)
        except ConnectionClosed as exc:
            self.close()
            raise common.unsent() from exc
        return len(data)

    @property
    def open(self) -> bool:
        """Whether the socket is open (the reader may not have noticed a failure yet)."""
        return self._ws.state is State.OPEN

    def receiver(self, stream_id: Lane = None) -> AsyncReceiver:
        """As `WebSocketConnection.receiver`: register before sending."""
        return self.reader.receiver(stream_id)

    def receive(
        self, stream_id: Lane, deadline: Deadline | None, end: LaneEnd
    ) -> AsyncReceiverPayloads:
        """As `WebSocketConnection.receive`."""
        return self.reader.receiver(stream_id).payloads(0, deadline, self.idle_timeout, end)

    async def recv_text(self, timeout: float | None) -> str:
        """Wait at most ``timeout`` seconds for the next text frame (the reader's read:
        call it only through a receiver while receivers exist).

        Raises:
            Timeout: no frame in time.
            ConnectionClosed: the peer closed the connection or it broke.
            ProtocolError: a binary frame, a frame over `MAX_EVENT_SIZE` bytes or one
                that is not UTF-8 (the connection is closed).
        """
        try:
            async with asyncio.timeout(timeout):
                data = await self._ws.recv()
        except TimeoutError as exc:
            raise Timeout(f"no WebSocket event for {timeout} seconds") from exc
        except ConnectionClosed as exc:
            raise self._closed(exc) from None
        if isinstance(data, str):
            return data
        raise common.not_text("binary")

    def _closed(self, exc: ConnectionClosed) -> LLMKitError:
        self.shut()
        sent, received = exc.sent, exc.rcvd
        if sent is not None and (received is None or exc.rcvd_then_sent is False):
            if sent.code == CloseCode.MESSAGE_TOO_BIG:  # we refused an oversized frame
                return common.too_large()
            if sent.code == CloseCode.INVALID_DATA:
                return common.invalid_utf8()
        if received is None:
            return common.broken()
        # An empty close frame: no code, as websocket-client reports it.
        code = None if received.code == CloseCode.NO_STATUS_RCVD else received.code
        return common.closed_by_server(code, received.reason, self._secrets)

    async def probe(self) -> bool:
        """Whether an idle connection can take a request, waiting for nothing.

        What arrived while idle is looked at: a close, or a late frame (such as an
        error about the connection's age), means no. Pings were answered already.
        """
        await asyncio.sleep(0)  # let bytes that already arrived be processed
        if not self.connected:
            self.close()
            return False
        router = self.reader.router
        if router.backlog and router.idle:  # a frame that is nobody's arrived
            self.close()
            return False
        reader = self.reader
        if reader.reading or not router.idle:  # other lanes: the reader sees to it
            return True
        reader.reading = True  # the read role: a lane placed meanwhile waits its turn
        try:
            async with asyncio.timeout(0):  # recv is cancellation-safe in websockets
                await self._ws.recv()
        except TimeoutError:
            return True  # nothing was waiting: the connection is idle and open
        except ConnectionClosed:
            pass
        finally:
            reader.release()
        self.close()
        return False

    def close(self) -> None:
        """Close the connection at once, awaiting nothing. Safe to call more than once.
        Every receiver still waiting fails (`ConnectionClosed`)."""
        self.reader.fail(common.broken())

    def shut(self) -> None:
        """Close the socket (the reader calls it once the socket failed)."""
        ws = self._ws
        if ws.state is State.OPEN:
            with contextlib.suppress(Exception):  # best effort: the socket closes anyway
                ws.protocol.send_close(CloseCode.NORMAL_CLOSURE)
                ws.send_data()
        transport = ws.transport
        transport.close()
        if transport.get_extra_info("sslcontext") is not None:
            # A TLS close waits for the peer's close_notify on the loop; a loop that ends
            # first leaks the socket (ResourceWarning). What was written is on its way.
            transport.abort()

    def payloads(self, bytes_sent: int, deadline: Deadline | None) -> AsyncWebSocketPayloadStream:
        """As `WebSocketConnection.payloads`: the default lane's frames."""
        return AsyncWebSocketPayloadStream(
            self, bytes_sent=bytes_sent, idle_timeout=self.idle_timeout, deadline=deadline
        )

    def __repr__(self) -> str:
        url = redact(self.url, self._secrets)
        return f"AsyncWebSocketConnection(url={url!r}, connected={self.connected})"


class AsyncWebSocketPayloadStream(AsyncReceiverPayloads):
    """As `WebSocketPayloadStream`: the default lane's frames, one response at a time."""

    __slots__ = ()

    def __init__(
        self,
        connection: AsyncWebSocketConnection,
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


class AsyncWebSocketTransport(common.Endpoint):
    """`WebSocketTransport` for asyncio."""

    async def connect(self, deadline: Deadline | None) -> AsyncWebSocketConnection:
        """Open a connection within ``deadline`` (see `AsyncWebSocketConnection.connect`)."""
        connection = await AsyncWebSocketConnection.connect(
            self.url, **self.connect_args(deadline), ping_interval=self.keepalive
        )
        self.opened(connection)
        return connection
