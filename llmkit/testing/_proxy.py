"""`ProxyServer`: a small HTTP proxy on loopback, so that proxy support is tested through
a real one.

It speaks what clients send to a corporate HTTP proxy: ``CONNECT host:port`` for a
tunnel (``https://`` and every WebSocket target: httpx, websocket-client and websockets
all tunnel ``wss://`` and ``ws://``), and plain HTTP forwarding for ``http://`` targets
(httpx sends ``POST http://host/path HTTP/1.1`` to the proxy and no ``CONNECT``). With
``auth`` it asks for Basic credentials (407 ``Proxy-Authenticate: Basic``) like a real
one. It connects only to loopback hosts (403 otherwise), records every tunnel's target
and every forwarded request for assertions, and bounds every wait: a request head is at
most 64 KiB read within ``timeout``, an idle relay ends after ``idle_timeout`` seconds,
and `stop` closes every socket and joins every thread with a timeout.
"""

from __future__ import annotations

import base64
import contextlib
import select
import socket
import ssl
import threading
from types import TracebackType
from urllib.parse import urlsplit

__all__ = ["ProxyServer"]

_MAX_HEAD = 64 * 1024
_CHUNK = 64 * 1024
_LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})
_ACCEPT_POLL = 0.1
_JOIN_TIMEOUT = 5.0


class _Closed(Exception):
    """The client went away, or sent what this proxy does not take."""


class _Client:
    """A client socket read up to a blank line, with what came after kept."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._buffer = b""

    def head(self) -> bytes:
        """The next request head, up to and without its blank line."""
        while b"\r\n\r\n" not in self._buffer:
            if len(self._buffer) > _MAX_HEAD:
                raise _Closed("request head too large")
            data = self.sock.recv(_CHUNK)
            if not data:
                raise _Closed("the client closed")
            self._buffer += data
        head, _, self._buffer = self._buffer.partition(b"\r\n\r\n")
        return head

    def exactly(self, size: int) -> bytes:
        """The next ``size`` bytes (a request body)."""
        while len(self._buffer) < size:
            data = self.sock.recv(_CHUNK)
            if not data:
                raise _Closed("the client closed")
            self._buffer += data
        body, self._buffer = self._buffer[:size], self._buffer[size:]
        return body

    def rest(self) -> bytes:
        """What arrived after the last head or body."""
        rest, self._buffer = self._buffer, b""
        return rest


class ProxyServer:
    """An HTTP proxy on 127.0.0.1 (a free port), run in background threads.

    Args:
        auth: ``(user, password)`` every request must carry as ``Proxy-Authorization:
            Basic``; None: no authentication.
        host: The loopback address to listen on (``127.0.0.1`` or ``::1``).
        timeout: Seconds to read a request head or connect upstream.
        idle_timeout: Seconds a tunnel or forwarded connection may carry nothing before
            it is closed.
        ssl_context: Serve TLS to the clients (an ``https://`` proxy) with this server
            context; None: plain ``http://``.

    Use it as a context manager (``with ProxyServer() as proxy:``), or call `start` and
    `stop`. ``proxy.url`` has no credentials; `url_with` puts some in.
    """

    def __init__(
        self,
        *,
        auth: tuple[str, str] | None = None,
        host: str = "127.0.0.1",
        timeout: float = 10.0,
        idle_timeout: float = 60.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        if host not in _LOOPBACK:
            raise ValueError("ProxyServer listens on loopback only")
        self.auth = auth
        self.host = host
        self.timeout = timeout
        self.idle_timeout = idle_timeout
        self.ssl_context = ssl_context
        self.tunnels: list[str] = []
        """The ``host:port`` of every tunnel opened (``CONNECT``), in order."""
        self.forwarded: list[str] = []
        """``METHOD url`` of every plain-HTTP request forwarded, in order."""
        self.refused = 0
        """Requests answered 407 (no or wrong credentials) or 403 (not loopback)."""
        self.port = 0
        self._listener: socket.socket | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []

    @property
    def url(self) -> str:
        """``http://host:port`` (``https://`` with ``ssl_context``), without credentials."""
        shown = f"[{self.host}]" if ":" in self.host else self.host
        scheme = "http" if self.ssl_context is None else "https"
        return f"{scheme}://{shown}:{self.port}"

    def url_with(self, user: str, password: str) -> str:
        """The proxy URL with ``user:password@`` in it (no percent-encoding)."""
        return self.url.replace("://", f"://{user}:{password}@", 1)

    def reset(self) -> None:
        """Forget what was recorded."""
        with self._lock:
            self.tunnels.clear()
            self.forwarded.clear()
            self.refused = 0

    # ------------------------------------------------------------ lifecycle

    def start(self) -> ProxyServer:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        listener = socket.socket(family, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.host, 0))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self._listener = listener
        self._spawn(self._accept_loop, "accept")
        return self

    def stop(self) -> None:
        """Close every socket and wait (bounded) for every thread."""
        self._stopping.set()
        with self._lock:
            sockets = list(self._sockets)
            threads = list(self._threads)
        for sock in sockets:
            _close(sock)
        for thread in threads:
            thread.join(_JOIN_TIMEOUT)
        if self._listener is not None:
            self._listener.close()
            self._listener = None

    def __enter__(self) -> ProxyServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"ProxyServer(url={self.url!r}, auth={'on' if self.auth else 'off'})"

    # ------------------------------------------------------------ threads

    def _spawn(self, target: object, role: str, *args: object) -> None:
        name = f"llmkit-proxy-{self.port}-{role}"
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)  # type: ignore[arg-type]
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()]
            self._threads.append(thread)
        thread.start()

    def _track(self, sock: socket.socket) -> bool:
        with self._lock:
            if self._stopping.is_set():
                return False
            self._sockets.add(sock)
            return True

    def _forget(self, *socks: socket.socket) -> None:
        for sock in socks:
            with self._lock:
                self._sockets.discard(sock)
            _close(sock)

    def _accept_loop(self) -> None:
        listener = self._listener
        assert listener is not None
        while not self._stopping.is_set():
            readable, _, _ = select.select([listener], [], [], _ACCEPT_POLL)
            if not readable:
                continue
            try:
                client, _ = listener.accept()
            except OSError:
                return
            if not self._track(client):
                _close(client)
                return
            self._spawn(self._serve, "client", client)

    def _serve(self, raw: socket.socket) -> None:
        sock = raw
        upstream: socket.socket | None = None
        try:
            sock.settimeout(self.timeout)
            if self.ssl_context is not None:
                sock = self.ssl_context.wrap_socket(raw, server_side=True)
                self._track(sock)
            client = _Client(sock)
            method, target, headers = _parse(client.head())
            if not self._authorized(headers):
                self._answer(sock, 407, "Proxy Authentication Required", auth=True)
                return
            if method == "CONNECT":
                host, _, port = target.rpartition(":")
                host = host.strip("[]")
            else:
                parts = urlsplit(target)
                if parts.scheme != "http" or not parts.hostname:
                    self._answer(sock, 400, "Bad Request")
                    return
                host, port = parts.hostname, str(parts.port or 80)
            if host not in _LOOPBACK or not port.isdigit():
                self._answer(sock, 403, "Forbidden")
                return
            try:
                upstream = socket.create_connection((host, int(port)), timeout=self.timeout)
            except OSError:
                self._answer(sock, 502, "Bad Gateway", count=False)
                return
            if not self._track(upstream):
                return
            if method == "CONNECT":
                with self._lock:
                    self.tunnels.append(target)
                sock.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                upstream.sendall(client.rest())
                self._relay(sock, upstream)
            else:
                self._spawn(self._pump, "answers", upstream, sock)
                self._forward(client, upstream, method, target, headers)
        except (_Closed, OSError, ValueError):  # ssl.SSLError is an OSError
            pass
        finally:
            self._forget(*{raw, sock, *([upstream] if upstream is not None else [])})

    def _authorized(self, headers: dict[str, str]) -> bool:
        if self.auth is None:
            return True
        token = base64.b64encode(f"{self.auth[0]}:{self.auth[1]}".encode()).decode()
        return headers.get("proxy-authorization") == f"Basic {token}"

    def _answer(
        self,
        sock: socket.socket,
        status: int,
        reason: str,
        *,
        auth: bool = False,
        count: bool = True,
    ) -> None:
        if count:
            with self._lock:
                self.refused += 1
        extra = 'Proxy-Authenticate: Basic realm="llmkit"\r\n' if auth else ""
        sock.sendall(
            f"HTTP/1.1 {status} {reason}\r\n{extra}Content-Length: 0\r\n"
            "Connection: close\r\n\r\n".encode()
        )

    def _relay(self, a: socket.socket, b: socket.socket) -> None:
        """Copy bytes both ways until one side closes or both stay idle too long."""
        for sock in (a, b):
            sock.setblocking(False)
        while not self._stopping.is_set():
            readable, _, _ = select.select([a, b], [], [], self.idle_timeout)
            if not readable:
                return
            for source in readable:
                try:
                    data = source.recv(_CHUNK)
                    while isinstance(source, ssl.SSLSocket) and source.pending():
                        data += source.recv(source.pending())  # select cannot see these
                except ssl.SSLWantReadError:
                    continue  # a TLS record not complete yet
                if not data:
                    return
                target = b if source is a else a
                target.setblocking(True)
                target.settimeout(self.timeout)
                target.sendall(data)
                target.setblocking(False)

    def _pump(self, source: socket.socket, target: socket.socket) -> None:
        """Copy ``source`` to ``target`` until ``source`` closes (the forwarded answers)."""
        source.settimeout(self.idle_timeout)
        try:
            while data := source.recv(_CHUNK):
                target.sendall(data)
        except OSError:
            pass
        finally:
            _close(target)

    def _forward(
        self,
        client: _Client,
        upstream: socket.socket,
        method: str,
        target: str,
        headers: dict[str, str],
    ) -> None:
        """Forward plain-HTTP requests, each rewritten to origin form, to one upstream."""
        origin = urlsplit(target).netloc
        client.sock.settimeout(self.idle_timeout)
        while True:
            parts = urlsplit(target)
            if parts.netloc != origin:
                return  # one upstream per client connection
            path = parts.path or "/"
            if parts.query:
                path += f"?{parts.query}"
            with self._lock:
                self.forwarded.append(f"{method} {target}")
            kept = [
                f"{name}: {value}"
                for name, value in headers.items()
                if name not in ("proxy-authorization", "proxy-connection")
            ]
            head = "\r\n".join([f"{method} {path} HTTP/1.1", *kept]) + "\r\n\r\n"
            length = headers.get("content-length", "0")
            if "transfer-encoding" in headers or not length.isdigit():
                return  # not needed by the clients under test
            upstream.sendall(head.encode("latin-1") + client.exactly(int(length)))
            method, target, headers = _parse(client.head())
            if not self._authorized(headers):
                return


def _parse(head: bytes) -> tuple[str, str, dict[str, str]]:
    """The method, target and headers (names in lower case) of a request head."""
    lines = head.decode("latin-1").split("\r\n")
    method, target, _version = lines[0].split(" ", 2)
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return method.upper(), target, headers


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()
