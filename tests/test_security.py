"""Security: the API key never leaks, redirects stay in their origin, TLS is verified,
hostile payloads are typed errors.

Over real sockets on 127.0.0.1: the local server (`server` fixture) where it can play the
part, and `RawServer` below (a few dozen lines over `socket`) where it cannot: WebSocket
upgrades answered with a redirect, TLS with a certificate made at test time, frames
nested or sized to hurt. Only loopback addresses are used.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gc
import hashlib
import json
import logging
import socket
import ssl
import threading
import traceback
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Protocol, Self, TypeVar

import events as ev
import httpx
import pytest
import trustme
from loop import API_KEY, TRANSPORTS, provider
from portal import PortalProvider

import llmkit
from llmkit.exceptions import FRAGMENT
from llmkit.openai.provider import ProviderBase
from llmkit.testing import ResponsesServer
from llmkit.transports._sse import SSEParser
from llmkit.transports.async_websocket import AsyncWebSocketConnection
from llmkit.transports.base import MAX_EVENT_SIZE
from llmkit.transports.websocket import WebSocketConnection

DATA = Path(__file__).parent / "data"
ECHO = f"Incorrect API key provided: {API_KEY}. You can find your API key at your provider."
"""An error message that echoes the key back, as real gateways have been seen to do."""
SERVER_LOGGERS = ("uvicorn", "websockets.server", "asyncio", "llmkit.testing")
"""Loggers of the local server's side of the socket: the server sees the key by design."""
CLIENT_LOGGERS = ("", "llmkit", "httpx", "httpcore", "websocket", "hpack", "h11")


KEY_PIECES = frozenset(API_KEY[i : i + FRAGMENT] for i in range(len(API_KEY) - FRAGMENT + 1))
"""Every 8-character substring of the key, ``sk-test-`` included: a text holding one holds
part of the key (a value a validation message cut short, a prefix, a suffix). A real
key's own prefix (``sk-proj-``) is part of the secret too, and no text of the suite says
``sk-test-`` but the key itself, so no piece is exempt."""


def leaks(text: str) -> bool:
    """Whether ``text`` holds the key or any 8-character piece of it."""
    return any(piece in text for piece in KEY_PIECES)


def exception_texts(error: BaseException) -> list[str]:
    """Every text an exception offers: message, repr, body, headers, partial, traceback."""
    texts = [str(error), repr(error), "".join(traceback.format_exception(error))]
    for name in ("message", "body", "headers", "partial", "code", "param", "reason"):
        texts.append(repr(getattr(error, name, None)))
    partial = getattr(error, "partial", None)
    if isinstance(partial, llmkit.Response):
        texts += [repr(partial.metadata), partial.text]
    return texts


@dataclass
class Audit:
    """What one test of the security suite produced: client log records, every
    `LLMKitError` made (whether the test looks at it or not: one swallowed by a fallback
    counts too) and every provider made."""

    caplog: pytest.LogCaptureFixture
    errors: list[llmkit.LLMKitError] = field(default_factory=list)
    providers: list[llmkit.Provider | llmkit.AsyncProvider] = field(default_factory=list)

    def texts(self) -> list[str]:
        """The log lines, each error's texts (message, repr, traceback with its causes,
        partial) and the reprs of each provider and its transports."""
        texts = log_texts(self.caplog)
        for error in self.errors:
            texts += exception_texts(error)
        for made in self.providers:
            texts += _transport_reprs(made)
        return texts


@pytest.fixture(autouse=True)
def key_audit(caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> Iterator[Audit]:
    """The acceptance check of the whole security suite (this module and test_secrets):
    with every client logger at DEBUG, no text of the test's `Audit` holds the key or
    any 8-character piece of it (`leaks`)."""
    for name in CLIENT_LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name)
    audit = Audit(caplog)
    error_init = llmkit.LLMKitError.__init__
    provider_init: Callable[..., None] = ProviderBase.__init__

    def init_error(self: llmkit.LLMKitError, *args: Any, **kwargs: Any) -> None:
        error_init(self, *args, **kwargs)
        audit.errors.append(self)

    def init_provider(self: llmkit.Provider | llmkit.AsyncProvider, *a: Any, **k: Any) -> None:
        provider_init(self, *a, **k)
        audit.providers.append(self)

    monkeypatch.setattr(llmkit.LLMKitError, "__init__", init_error)
    monkeypatch.setattr(ProviderBase, "__init__", init_provider)
    yield audit
    assert_no_key(audit.texts())


@pytest.fixture
def client_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Every client-side logger at DEBUG, captured."""
    for name in CLIENT_LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name)
    return caplog


def log_texts(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The client side's log lines (with any exception info), formatted."""
    handler = logging.Handler()
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    return [
        handler.format(record)
        for record in caplog.records
        if not record.name.startswith(SERVER_LOGGERS)
    ]


def assert_no_key(texts: list[str]) -> None:
    """No text holds the key; a failure shows where the first one does."""
    leaked = [text for text in texts if leaks(text)]
    if leaked:
        at = min(i for i in (leaked[0].find(piece) for piece in KEY_PIECES) if i >= 0)
        where = leaked[0][max(at - 300, 0) : at + 60]
        pytest.fail(f"the API key leaked into {len(leaked)} text(s), first: ...{where!r}")


# --------------------------------------------------------------------------- a raw server


@dataclass
class Request:
    """One HTTP request as `RawServer` read it (header names lower-cased)."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes = b""


Handler = Callable[[Request, socket.socket], None]
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def _read_request(sock: socket.socket) -> Request | None:
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        head += chunk
        if len(head) > 1 << 20:
            return None
    head, _, rest = head.partition(b"\r\n\r\n")
    first, *lines = head.decode("latin-1").split("\r\n")
    method, path, _ = first.split(" ", 2)
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    size = int(headers.get("content-length", "0"))
    while len(rest) < size:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    return Request(method, path, headers, rest)


@dataclass
class RawServer:
    """A threaded HTTP/WebSocket server on 127.0.0.1 that answers with raw bytes.

    Each connection carries one request, handed to ``handler`` with the socket (wrapped
    in TLS when ``tls`` is given). ``accepted`` counts TCP connections, so a test can
    prove that nobody connected; ``requests`` are the requests that were read.
    """

    handler: Handler
    host: str = "127.0.0.1"
    tls: ssl.SSLContext | None = None
    greeting: bytes = b""
    """Sent as soon as a connection is accepted, before anything is read."""
    accepted: int = 0
    requests: list[Request] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _sockets: list[socket.socket] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._listener = socket.create_server((self.host, 0))
        self._listener.settimeout(0.05)
        self.port: int = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def url(self, scheme: str, path: str = "/v1") -> str:
        return f"{scheme}://{self.host}:{self.port}{path}"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted += 1
            self._sockets.append(connection)
            threading.Thread(target=self._handle, args=(connection,), daemon=True).start()

    def _handle(self, connection: socket.socket) -> None:
        try:
            with contextlib.ExitStack() as stack:
                sock = stack.enter_context(connection)
                sock.settimeout(10)
                sock.sendall(self.greeting)
                if self.tls is not None:
                    sock = stack.enter_context(self.tls.wrap_socket(sock, server_side=True))
                request = _read_request(sock)
                if request is not None:
                    self.requests.append(request)
                    self.handler(request, sock)
        except (OSError, ValueError):
            pass  # the client went away, or refused our certificate: both are expected

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._listener.close()
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def reply(
    sock: socket.socket, status: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> None:
    lines = [f"HTTP/1.1 {status}", *(f"{k}: {v}" for k, v in (headers or {}).items())]
    lines += [f"Content-Length: {len(body)}", "Connection: close", "", ""]
    sock.sendall("\r\n".join(lines).encode("latin-1") + body)


def accept_upgrade(request: Request, sock: socket.socket) -> None:
    digest = hashlib.sha1((request.headers["sec-websocket-key"] + WS_GUID).encode()).digest()
    sock.sendall(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + base64.b64encode(digest) + b"\r\n\r\n"
    )


def frame_header(length: int, opcode: int = 0x1) -> bytes:
    """A final, unmasked server frame header for a payload of ``length`` bytes."""
    if length < 126:
        return bytes([0x80 | opcode, length])
    if length < 1 << 16:
        return bytes([0x80 | opcode, 126]) + length.to_bytes(2, "big")
    return bytes([0x80 | opcode, 127]) + length.to_bytes(8, "big")


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("the client closed")
        data += chunk
    return data


def read_frame(sock: socket.socket) -> tuple[int, bytes]:
    """One masked client frame: its opcode and unmasked payload."""
    first, second = _recv_exact(sock, 2)
    length = second & 0x7F
    if length == 126:
        length = int.from_bytes(_recv_exact(sock, 2), "big")
    elif length == 127:
        length = int.from_bytes(_recv_exact(sock, 8), "big")
    mask = _recv_exact(sock, 4) if second & 0x80 else b"\0\0\0\0"
    payload = _recv_exact(sock, length)
    return first & 0x0F, bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def recv_frame(sock: socket.socket) -> bytes:
    """One masked client frame's payload (the ``response.create``)."""
    return read_frame(sock)[1]


def responses_events(text: str = "Hello") -> list[str]:
    return [
        ev.created(),
        *ev.message_events("msg_1", [text]),
        ev.completed(output=[ev.message_item("msg_1", text)], usage=ev.usage(3, 1)),
    ]


def sse(payloads: list[str]) -> bytes:
    return b"".join(b"data: " + p.encode() + b"\n\n" for p in payloads)


CHAT_SSE = (DATA / "chat" / "openai-text-usage.sse").read_bytes()


def serve_sse(request: Request, sock: socket.socket) -> None:
    """Answer a POST with a small, valid stream of the API its path names."""
    body = CHAT_SSE if request.path.endswith("/chat/completions") else sse(responses_events())
    reply(sock, "200 OK", body, {"Content-Type": "text/event-stream"})


def serve_ws(request: Request, sock: socket.socket, frames: list[bytes]) -> None:
    """Accept the upgrade, read the ``response.create``, send ``frames`` as text frames."""
    accept_upgrade(request, sock)
    recv_frame(sock)
    for frame in frames:
        sock.sendall(frame_header(len(frame)) + frame)
    with contextlib.suppress(OSError):
        while sock.recv(65536):  # until the client closes
            pass


def is_upgrade(request: Request) -> bool:
    return request.headers.get("upgrade", "").lower() == "websocket"


def raw_provider(base_url: str, transport: str, **options: Any) -> llmkit.Provider | PortalProvider:
    """A provider for ``base_url``: an `AsyncProvider` (behind a portal) for an async
    `Transport` of `TRANSPORTS`, else a `Provider`."""
    settings: dict[str, Any] = {
        "base_url": base_url,
        "api_key": API_KEY,
        "use_responses_api": transport != "chat",
        "websocket": transport == "websocket",
        "max_retries": 0,
        "timeout": 10,
        **options,
    }
    if getattr(transport, "is_async", False):
        return PortalProvider(**settings)
    return llmkit.Provider(**settings)


# --------------------------------------------------------------------------- two WebSocket flavours

WAIT = 20.0
"""Longest one event loop may run a scenario (every wait inside has a shorter timeout)."""
T = TypeVar("T")


class Connection(Protocol):
    """A WebSocket connection as the tests drive it, in the async transport's spelling."""

    @property
    def url(self) -> str: ...

    @property
    def connected(self) -> bool: ...

    async def send_text(self, text: str) -> int: ...

    async def recv_text(self, timeout: float | None) -> str: ...

    async def probe(self) -> bool: ...

    def close(self) -> None: ...


class Blocking:
    """A `WebSocketConnection` in that spelling: each call blocks, then returns.

    Every server here runs on threads of its own, so blocking the test's event loop
    stalls nobody.
    """

    def __init__(self, connection: WebSocketConnection) -> None:
        self.connection = connection

    @property
    def url(self) -> str:
        return self.connection.url

    @property
    def connected(self) -> bool:
        return self.connection.connected

    async def send_text(self, text: str) -> int:
        return self.connection.send_text(text)

    async def recv_text(self, timeout: float | None) -> str:
        return self.connection.recv_text(timeout)

    async def probe(self) -> bool:
        return self.connection.probe()

    def close(self) -> None:
        self.connection.close()

    def __repr__(self) -> str:
        return repr(self.connection)


class Opener(Protocol):
    def __call__(
        self,
        url: str,
        *,
        headers: Mapping[str, str],
        timeout: float | None,
        secrets: Sequence[str] = ...,
    ) -> Awaitable[Connection]: ...


async def _open_blocking(
    url: str, *, headers: Mapping[str, str], timeout: float | None, secrets: Sequence[str] = ()
) -> Connection:
    return Blocking(
        WebSocketConnection.connect(url, headers=headers, timeout=timeout, secrets=secrets)
    )


def run_loop(main: Callable[[], Awaitable[T]]) -> T:
    """``main()`` on a fresh event loop, bounded by `WAIT`.

    The test fails when the loop reports a problem (a task destroyed while pending, an
    exception nobody retrieved) or when a task outlives ``main`` (say, a keep-alive
    that ``close`` did not stop). Unclosed sockets and coroutines never awaited warn,
    and warnings are errors in this suite.
    """
    problems: list[str] = []

    async def guarded() -> T:
        asyncio.get_running_loop().set_exception_handler(
            lambda _, context: problems.append(str(context))
        )
        try:
            return await asyncio.wait_for(main(), WAIT)
        finally:
            others: set[asyncio.Task[Any]] = set()
            for _ in range(100):  # the transport's callbacks settle within a few turns
                others = asyncio.all_tasks() - {asyncio.current_task()}
                if not others:
                    break
                await asyncio.sleep(0.01)
            problems.extend(f"a task outlived the scenario: {task!r}" for task in others)

    try:
        return asyncio.run(guarded())
    finally:
        gc.collect()
        if problems:
            pytest.fail("; ".join(problems))


@dataclass(frozen=True)
class Flavour:
    """One of the two WebSocket transports, driven through the same `Connection` calls."""

    name: str
    open: Opener

    def session(
        self,
        url: str,
        scenario: Callable[[Connection], Awaitable[T]],
        *,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = 5,
        secrets: Sequence[str] = (),
    ) -> T:
        """Open a connection, run ``scenario`` on it and close it, all on one event loop
        (an async connection belongs to the loop it was opened on)."""

        async def main() -> T:
            connection = await self.open(
                url, headers=headers or {}, timeout=timeout, secrets=secrets
            )
            try:
                return await scenario(connection)
            finally:
                connection.close()

        return run_loop(main)

    def connect(
        self,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = 5,
        secrets: Sequence[str] = (),
    ) -> Connection:
        """Open a connection and close it at once; returns the closed connection."""
        return self.session(url, _itself, headers=headers, timeout=timeout, secrets=secrets)


async def _itself(connection: Connection) -> Connection:
    return connection


SYNC = Flavour("sync", _open_blocking)
ASYNC = Flavour("async", AsyncWebSocketConnection.connect)
FLAVOURS = [pytest.param(SYNC, id="sync"), pytest.param(ASYNC, id="async")]
"""`WebSocketConnection` and `AsyncWebSocketConnection`, for ``parametrize("flavour", ...)``."""


# --------------------------------------------------------------------------- the key


def _success(server: ResponsesServer, transport: str) -> tuple[type[Exception], ...]:
    return ()


def _unauthorized(server: ResponsesServer, transport: str) -> tuple[type[Exception], ...]:
    server.api_key = "sk-the-right-key-0000"
    return (llmkit.AuthenticationError,)


def _status(status: int, error: type[Exception]) -> Callable[..., tuple[type[Exception], ...]]:
    def arm(server: ResponsesServer, transport: str) -> tuple[type[Exception], ...]:
        if transport == "websocket":  # the upgrade fails first: the turn falls back to HTTP
            server.faults.reject_upgrades(status=503)
        server.faults.reject_requests(status=status, message=ECHO)
        return (error,)

    return arm


def _error_event(shape: Literal["nested", "flat"]) -> Callable[..., tuple[type[Exception], ...]]:
    def arm(server: ResponsesServer, transport: str) -> tuple[type[Exception], ...]:
        server.faults.error_next("invalid_api_key", ECHO, status=401, shape=shape)
        return (llmkit.APIError,)

    return arm


def _failed(server: ResponsesServer, transport: str) -> tuple[type[Exception], ...]:
    server.faults.fail_next("server_error", ECHO)
    return (llmkit.ResponseFailed,)


def _drop(server: ResponsesServer, transport: str) -> tuple[type[Exception], ...]:
    server.faults.drop_after(3)
    return (llmkit.ConnectionClosed, llmkit.IncompleteStream)


def _fallback(server: ResponsesServer, transport: str) -> tuple[type[Exception], ...]:
    server.faults.reject_upgrades(status=503)
    return ()


SCENARIOS: dict[str, Callable[[ResponsesServer, str], tuple[type[Exception], ...]]] = {
    "success": _success,
    "401": _unauthorized,
    "400-echoing-the-key": _status(400, llmkit.BadRequestError),
    "429-echoing-the-key": _status(429, llmkit.RateLimitError),
    "500-echoing-the-key": _status(500, llmkit.InternalServerError),
    "error-event-nested-echoing-the-key": _error_event("nested"),
    "error-event-flat-echoing-the-key": _error_event("flat"),
    "response-failed-echoing-the-key": _failed,
    "drop": _drop,
    "fallback-to-http": _fallback,
}


def _transport_reprs(p: llmkit.Provider | llmkit.AsyncProvider | PortalProvider) -> list[str]:
    texts = [repr(p), repr(p._http)]
    if p._websocket is not None:
        texts.append(repr(p._websocket))
        texts += [repr(connection) for connection in p._websocket.connections()]
    return texts


@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_the_api_key_appears_in_no_log_repr_exception_or_metadata(
    server: ResponsesServer,
    transport: str,
    scenario: str,
    client_logs: pytest.LogCaptureFixture,
) -> None:
    expected = SCENARIOS[scenario](server, transport)
    texts: list[str] = []
    error: llmkit.LLMKitError | None = None
    with provider(server, transport) as p:
        model = p.language_model("scripted")
        texts += [repr(model), *_transport_reprs(p)]
        try:
            with model.stream(llmkit.Call("hello there")) as stream:
                texts += [repr(part) for part in stream]
            response = stream.response
            texts += [repr(response), repr(response.metadata), repr(response.message)]
        except llmkit.LLMKitError as caught:
            error = caught
            texts += exception_texts(caught)
        texts += _transport_reprs(p)
    if expected:
        assert isinstance(error, expected), f"expected {expected}, got {error!r}"
    else:
        assert error is None
    if scenario == "fallback-to-http" and transport == "websocket":
        assert "503" in (response.metadata.fallback_reason or "")
    assert_no_key(texts + log_texts(client_logs))


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_key_echoed_in_error_headers_is_redacted_from_the_exception(
    server: ResponsesServer, transport: str
) -> None:
    if transport == "websocket":
        server.faults.reject_upgrades(status=503)
    headers = {"x-echo": f"Bearer {API_KEY}", "www-authenticate": f'Bearer key="{API_KEY}"'}
    server.faults.reject_requests(status=403, message=ECHO, headers=headers)
    with provider(server, transport) as p, pytest.raises(llmkit.PermissionDeniedError) as caught:
        p.language_model("scripted").generate(llmkit.Call("hi"))
    assert "x-echo" in caught.value.headers
    assert_no_key(exception_texts(caught.value))


@pytest.mark.parametrize("transport", [t for t in TRANSPORTS if t != "chat"])
def test_a_cause_quoting_the_key_is_dropped_from_the_exception(
    server: ResponsesServer, transport: str
) -> None:
    """A malformed item that holds the key: the validation error quoting it is the
    `ProtocolError`'s cause, and a traceback prints causes, so it is dropped."""
    item = {"type": "message", "id": "msg_1", "role": "assistant", "content": API_KEY}
    server.replay_next(sse([ev.created(), ev.item_done(item)]))
    with provider(server, transport) as p, pytest.raises(llmkit.ProtocolError) as caught:
        p.language_model("scripted").generate(llmkit.Call("hi"))
    error = caught.value
    assert error.message.startswith("malformed output item")
    assert_no_key(exception_texts(error))  # the traceback prints the cause too
    assert error.__cause__ is None and error.__suppress_context__


@pytest.mark.parametrize("status", [401, 403])
def test_a_key_echoed_by_a_refused_websocket_upgrade_is_redacted(
    status: int, client_logs: pytest.LogCaptureFixture
) -> None:
    """401 is raised, 403 falls back to HTTP; neither exception nor log shows the key."""
    body = json.dumps({"error": {"message": ECHO, "code": "invalid_api_key", "key": API_KEY}})

    def handler(request: Request, sock: socket.socket) -> None:
        if is_upgrade(request):
            headers = {"Content-Type": "application/json", "X-Echo": API_KEY}
            reply(sock, f"{status} Refused {API_KEY}", body.encode(), headers)
        else:
            serve_sse(request, sock)

    texts: list[str] = []
    with RawServer(handler) as origin, raw_provider(origin.url("http"), "websocket") as p:
        model = p.language_model("gpt-test")
        if status == 401:
            with pytest.raises(llmkit.AuthenticationError) as caught:
                model.generate(llmkit.Call("hi"))
            texts += exception_texts(caught.value)
        else:
            response = model.generate(llmkit.Call("hi"))
            assert response.metadata.fallback_reason
            texts += [repr(response), repr(response.metadata)]
        texts += _transport_reprs(p)
    assert_no_key(texts + log_texts(client_logs))


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_key_inside_the_base_url_is_redacted_too(
    transport: str, client_logs: pytest.LogCaptureFixture
) -> None:
    """Gateways that route by a key in the path: the key is still a secret everywhere."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()  # nothing listens: every attempt is a connect error
    base_url = f"http://127.0.0.1:{port}/gateway/{API_KEY}/v1"
    with raw_provider(base_url, transport) as p:
        texts = [repr(p), repr(p.language_model("gpt-test")), *_transport_reprs(p)]
        with pytest.raises(llmkit.ConnectError) as caught:
            p.language_model("gpt-test").generate(llmkit.Call("hi"))
        texts += exception_texts(caught.value)
    assert_no_key(texts + log_texts(client_logs))


# --------------------------------------------------------------------------- redirects


def _other_origin(kind: str) -> RawServer:
    host = "127.0.0.2" if kind == "other-host" else "127.0.0.1"
    try:
        return RawServer(serve_sse, host=host)
    except OSError:  # pragma: no cover - only 127.0.0.1 routes on this system
        pytest.skip(f"cannot listen on {host}")


def _location(kind: str, origin: RawServer, other: RawServer) -> str:
    path = "/v1/responses"
    return {
        "other-host": other.url("ws", path),
        "other-port": other.url("ws", path),
        "other-scheme": origin.url("wss", path),
        "userinfo-trick": f"ws://127.0.0.1:{origin.port}@127.0.0.1:{other.port}{path}",
    }[kind]


def _redirecting(status: int, location: Callable[[], str]) -> Handler:
    def handler(request: Request, sock: socket.socket) -> None:
        if is_upgrade(request):
            reply(sock, f"{status} Moved", headers={"Location": location()})
        else:
            serve_sse(request, sock)

    return handler


@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize("kind", ["other-host", "other-port", "other-scheme", "userinfo-trick"])
@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_websocket_redirect_to_another_origin_is_refused(
    status: int, kind: str, flavour: Flavour
) -> None:
    with _other_origin(kind) as other:
        location: list[str] = []
        with RawServer(_redirecting(status, lambda: location[0])) as origin:
            location.append(_location(kind, origin, other))
            with pytest.raises(llmkit.ConnectError, match="another origin"):
                flavour.connect(
                    origin.url("ws", "/v1/responses"),
                    headers={"Authorization": f"Bearer {API_KEY}"},
                    secrets=[API_KEY],
                )
            assert origin.accepted == 1  # not followed to the same port with TLS either
        assert other.accepted == 0
        assert other.requests == []


def test_a_provider_falls_back_to_http_on_a_cross_origin_redirect_and_never_sends_the_key_away(
    client_logs: pytest.LogCaptureFixture,
) -> None:
    with RawServer(serve_sse) as other:
        location = other.url("ws", "/v1/responses")
        with (
            RawServer(_redirecting(307, lambda: location)) as origin,
            raw_provider(origin.url("http"), "websocket") as p,
        ):
            response = p.language_model("gpt-test").generate(llmkit.Call("hi"))
        assert response.text == "Hello"
        assert response.metadata.transport == "http"
        assert "ConnectError" in (response.metadata.fallback_reason or "")
        assert [r.method for r in origin.requests] == ["GET", "POST"]
        assert other.accepted == 0
    assert_no_key([repr(response), *log_texts(client_logs)])


@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize("form", ["absolute", "relative"])
def test_a_same_origin_websocket_redirect_is_followed(form: str, flavour: Flavour) -> None:
    def handler(request: Request, sock: socket.socket) -> None:
        if request.path == "/v1/responses":
            target = "/v1/moved" if form == "relative" else f"ws://127.0.0.1:{port[0]}/v1/moved"
            reply(sock, "307 Temporary Redirect", headers={"Location": target})
        else:
            serve_ws(request, sock, [p.encode() for p in responses_events()])

    port: list[int] = []
    with RawServer(handler) as origin:
        port.append(origin.port)
        connection = flavour.connect(
            origin.url("ws", "/v1/responses"), headers={"Authorization": f"Bearer {API_KEY}"}
        )
    assert [r.path for r in origin.requests] == ["/v1/responses", "/v1/moved"]
    assert all(r.headers["authorization"] == f"Bearer {API_KEY}" for r in origin.requests)
    assert connection.url == origin.url("ws", "/v1/moved")


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_a_same_origin_redirect_loop_ends_with_a_connect_error(flavour: Flavour) -> None:
    url: list[str] = []
    with RawServer(_redirecting(302, lambda: url[0])) as origin:
        url.append(origin.url("ws", "/v1/responses"))
        with pytest.raises(llmkit.ConnectError, match="too many"):
            flavour.connect(url[0])
        assert origin.accepted == 4  # the first try and three redirects


# --------------------------------------------------------------------------- TLS


def test_the_http_client_llmkit_builds_verifies_certificates() -> None:
    with llmkit.Provider(api_key=API_KEY, base_url="https://127.0.0.1:1/v1") as p:
        transport = p._http._client._transport
        assert isinstance(transport, httpx.HTTPTransport)
        context = transport._pool._ssl_context
        assert context is not None
        assert context.verify_mode is ssl.CERT_REQUIRED
        assert context.check_hostname


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A private CA (its certificate) and a certificate for 127.0.0.1 it issued (with
    its key), made now with trustme: no CA the client knows of vouches for it."""
    folder = tmp_path_factory.mktemp("tls")
    ca_pem, server_pem = folder / "ca.pem", folder / "server.pem"
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(ca_pem))
    ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(server_pem))
    return ca_pem, server_pem


@pytest.fixture
def tls_server(certificate: tuple[Path, Path]) -> Iterator[RawServer]:
    """HTTPS and WSS on one port: SSE for POSTs, a WebSocket turn for upgrades."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certificate[1])

    def handler(request: Request, sock: socket.socket) -> None:
        if is_upgrade(request):
            serve_ws(request, sock, [p.encode() for p in responses_events()])
        else:
            serve_sse(request, sock)

    with RawServer(handler, tls=context) as server:
        yield server


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_certificate_of_an_unknown_ca_is_refused_by_default(
    tls_server: RawServer, transport: str
) -> None:
    with (
        raw_provider(tls_server.url("https"), transport) as p,
        pytest.raises(llmkit.ConnectError) as caught,
    ):
        p.language_model("gpt-test").generate(llmkit.Call("hi"))
    assert tls_server.accepted == (2 if transport == "websocket" else 1)  # WS, then HTTP
    assert tls_server.requests == []  # no request got through the handshake
    assert isinstance(caught.value.__cause__, httpx.ConnectError)
    assert "CERTIFICATE_VERIFY_FAILED" in str(caught.value)


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_a_wss_connection_verifies_the_certificate(tls_server: RawServer, flavour: Flavour) -> None:
    with pytest.raises(llmkit.ConnectError, match="SSLCertVerificationError") as caught:
        flavour.connect(tls_server.url("wss", "/v1/responses"))
    assert isinstance(caught.value.__cause__, ssl.SSLCertVerificationError)
    assert tls_server.requests == []


@pytest.mark.parametrize("transport", ["chat", "http"])
def test_the_same_server_is_reached_when_its_certificate_is_trusted(
    tls_server: RawServer, certificate: tuple[Path, Path], transport: str
) -> None:
    """The control: the refusals above are the certificate's, not a broken server's."""
    trusted = ssl.create_default_context(cafile=str(certificate[0]))
    with (
        httpx.Client(verify=trusted) as client,
        raw_provider(tls_server.url("https"), transport, http_client=client) as p,
    ):
        response = p.language_model("gpt-test").generate(llmkit.Call("hi"))
    assert response.text in ("Hello", "Hello there!")
    assert tls_server.requests[0].headers["authorization"] == f"Bearer {API_KEY}"


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_https_to_a_server_that_does_not_speak_tls_is_a_connect_error(transport: str) -> None:
    garbage = b"HTTP/1.1 200 OK\r\nthis is not TLS at all\r\n\r\n" * 4
    with RawServer(serve_sse, greeting=garbage) as server:
        with raw_provider(server.url("https"), transport) as p, pytest.raises(llmkit.ConnectError):
            p.language_model("gpt-test").generate(llmkit.Call("hi"))
        assert server.accepted == (2 if transport == "websocket" else 1)


# --------------------------------------------------------------------------- payloads


HOSTILE = {
    "list-100000-deep": "[" * 100_000 + "]" * 100_000,
    "object-100000-deep-unterminated": '{"a":' * 100_000,
    "object-100000-deep": '{"a":' * 100_000 + "1" + "}" * 100_000,
    "deep-inside-a-text-delta": ev.text_delta("msg_1", "x")[:-1]
    + ', "extra": '
    + "[" * 50_000
    + "]" * 50_000
    + "}",
}


def _mock_provider(
    body: bytes | Iterator[bytes], transport: str, status: int = 200
) -> tuple[httpx.Client, llmkit.Provider | PortalProvider]:
    content_type = "text/event-stream" if status == 200 else "application/json"

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, headers={"content-type": content_type}, content=body)

    client = httpx.Client(transport=httpx.MockTransport(handler))
    return client, raw_provider("http://127.0.0.1:9/v1", transport, http_client=client)


@pytest.mark.parametrize("transport", ["chat", "http"])
@pytest.mark.parametrize("payload", HOSTILE)
def test_a_deeply_nested_sse_event_is_a_protocol_error(transport: str, payload: str) -> None:
    start = CHAT_SSE.split(b"\n\n")[0] + b"\n\n" if transport == "chat" else sse([ev.created()])
    body = start + b"data: " + HOSTILE[payload].encode() + b"\n\n"
    client, p = _mock_provider(body, transport)
    with client, p, pytest.raises(llmkit.ProtocolError) as caught:
        p.language_model("gpt-test").generate(llmkit.Call("hi"))
    assert isinstance(caught.value.partial, llmkit.Response)


@pytest.mark.parametrize("transport", ["chat", "http"])
@pytest.mark.parametrize(
    "body",
    [
        "[" * 100_000,
        '{"error": ' * 100_000,
        json.dumps({"error": {"message": "deep", "detail": "DEEP"}}).replace(
            '"DEEP"', '{"a":' * 600 + "1" + "}" * 600
        ),
    ],
    ids=["list-100000-deep", "object-100000-deep", "error-detail-600-deep"],
)
def test_a_deeply_nested_error_body_is_a_typed_status_error(transport: str, body: str) -> None:
    client, p = _mock_provider(body.encode(), transport, status=400)
    with client, p, pytest.raises(llmkit.BadRequestError) as caught:
        p.language_model("gpt-test").generate(llmkit.Call("hi"))
    assert caught.value.status_code == 400


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_a_deeply_nested_websocket_upgrade_refusal_is_a_typed_status_error(
    flavour: Flavour,
) -> None:
    def handler(request: Request, sock: socket.socket) -> None:
        reply(sock, "400 Bad Request", b"[" * 100_000, {"Content-Type": "application/json"})

    with RawServer(handler) as origin, pytest.raises(llmkit.BadRequestError) as caught:
        flavour.connect(origin.url("ws", "/v1/responses"))
    assert caught.value.status_code == 400


@pytest.mark.parametrize("payload", HOSTILE)
def test_a_deeply_nested_websocket_frame_is_a_protocol_error(payload: str) -> None:
    """Over a real WebSocket. (The local server cannot replay these: its own SSE reader
    decodes each payload and fails on the nesting, see the report.)"""
    frames = [ev.created().encode(), HOSTILE[payload].encode()]
    with (
        RawServer(lambda request, sock: serve_ws(request, sock, frames)) as origin,
        raw_provider(origin.url("http"), "websocket") as p,
        pytest.raises(llmkit.ProtocolError) as caught,
    ):
        p.language_model("gpt-test").generate(llmkit.Call("hi"))
    assert isinstance(caught.value.partial, llmkit.Response)
    assert [r.method for r in origin.requests] == ["GET"]  # never replayed over HTTP


def _events_around() -> tuple[bytes, bytes]:
    """The bytes before and after the text of one huge ``output_text.delta`` event."""
    head, tail = ev.text_delta("msg_1", "\x00").split("\\u0000")
    start = sse([ev.created(), *ev.message_events("msg_1", [])[:2]])
    return start + b"data: " + head.encode(), tail.encode() + b"\n\n"


def _huge_sse(size: int) -> Iterator[bytes]:
    before, after = _events_around()
    yield before
    chunk = b"x" * (1 << 20)
    for _ in range(size // len(chunk)):
        yield chunk
    yield b"x" * (size % len(chunk))
    yield after
    yield sse([ev.completed(usage=ev.usage(1, 1))])


def test_a_large_event_under_the_limit_is_received_whole() -> None:
    size = 8 << 20
    client, p = _mock_provider(_huge_sse(size), "http")
    with client, p:
        response = p.language_model("gpt-test").generate(llmkit.Call("hi"))
    assert len(response.text) == size


def test_an_sse_event_over_the_limit_is_refused_before_it_is_buffered_whole() -> None:
    client, p = _mock_provider(_huge_sse(MAX_EVENT_SIZE + 1), "http")
    with client, p, pytest.raises(llmkit.ProtocolError, match="exceeded"):
        p.language_model("gpt-test").generate(llmkit.Call("hi"))


def test_the_sse_size_limit_holds_after_a_crlf_line_ending_too() -> None:
    """A stream that once used ``\\r\\n`` goes through the specification's line decoder."""
    parser = SSEParser(max_event_size=100)
    assert parser.feed("data: a\r\n\r\n") == ["a"]
    with pytest.raises(llmkit.ProtocolError, match="exceeded 100"):
        for _ in range(10):
            parser.feed("data: " + "x" * 60)


def test_a_websocket_frame_over_the_limit_is_a_protocol_error() -> None:
    def handler(request: Request, sock: socket.socket) -> None:
        accept_upgrade(request, sock)
        recv_frame(sock)
        sock.sendall(frame_header(len(ev.created())) + ev.created().encode())
        size = MAX_EVENT_SIZE + 1
        sock.sendall(frame_header(size))
        chunk = b"x" * (1 << 20)
        for _ in range(size // len(chunk)):
            sock.sendall(chunk)
        sock.sendall(b"x" * (size % len(chunk)))
        with contextlib.suppress(OSError):
            while sock.recv(65536):
                pass

    with (
        RawServer(handler) as origin,
        raw_provider(origin.url("http"), "websocket") as p,
        pytest.raises(llmkit.ProtocolError, match="exceeded"),
    ):
        p.language_model("gpt-test").generate(llmkit.Call("hi"))


def test_a_message_of_continuation_frames_over_the_limit_is_a_protocol_error() -> None:
    """Each frame is under the limit, the message they add up to is not: the client
    refuses once the sum passes it, without waiting for the final frame (which never
    comes here: a client that waited would time out instead)."""
    part = 8 << 20

    def fragment(opcode: int) -> bytes:  # not final: FIN is clear
        return bytes([opcode, 127]) + part.to_bytes(8, "big") + b"x" * part

    def handler(request: Request, sock: socket.socket) -> None:
        accept_upgrade(request, sock)
        recv_frame(sock)
        sock.sendall(frame_header(len(ev.created())) + ev.created().encode())
        with contextlib.suppress(OSError):
            sock.sendall(fragment(0x1))  # a text message begins
            for _ in range(MAX_EVENT_SIZE // part):
                sock.sendall(fragment(0x0))  # continuation frames
            while sock.recv(65536):
                pass

    with (
        RawServer(handler) as origin,
        raw_provider(origin.url("http"), "websocket") as p,
        pytest.raises(llmkit.ProtocolError, match="exceeded") as caught,
    ):
        p.language_model("gpt-test").generate(llmkit.Call("hi"))
    assert caught.value.partial is not None
    assert caught.value.partial.id == "resp_1"


def test_a_websocket_frame_announcing_more_than_the_limit_is_refused_by_its_header() -> None:
    """A frame header says 1 GiB; the client must refuse once the limit is passed, not
    read on until the peer stops (websocket-client itself has no cap)."""

    def handler(request: Request, sock: socket.socket) -> None:
        accept_upgrade(request, sock)
        recv_frame(sock)
        sock.sendall(frame_header(len(ev.created())) + ev.created().encode())
        sock.sendall(frame_header(1 << 30))
        chunk = b"x" * (1 << 20)
        with contextlib.suppress(OSError):
            for _ in range((MAX_EVENT_SIZE >> 20) + 1):
                sock.sendall(chunk)
        # ... then the peer gives up. A client that enforces the limit has refused by now.

    with (
        RawServer(handler) as origin,
        raw_provider(origin.url("http"), "websocket") as p,
        pytest.raises(llmkit.ProtocolError, match="exceeded"),
    ):
        p.language_model("gpt-test").generate(llmkit.Call("hi"))
