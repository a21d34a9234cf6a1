"""Running the ASGI app under uvicorn: in a background thread, or in the foreground.

The socket is bound before uvicorn starts (port 0 → a free port, no race), and every
wait (start-up, shut-down) has a timeout so a broken server fails a test instead of
hanging it.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import uvicorn
from uvicorn.protocols.utils import ClientDisconnected
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.exceptions import InvalidState

from llmkit.testing._app import ResponsesApp
from llmkit.testing._core import ABORT_EXTENSION, ServerCore
from llmkit.testing._faults import Faults, read_replay_source
from llmkit.testing._lanes import LANE_MODES, BusyPolicy, HeadEviction, LaneMode
from llmkit.testing._state import ServerStats

_START_TIMEOUT = 10.0
_STOP_TIMEOUT = 10.0


class _WebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's sans-I/O WebSocket protocol plus an `abort` extension.

    ASGI has no way to drop a connection without a close frame (or to drop the TCP before
    answering the upgrade); fault injection needs both, so the app gets a callable. Nor
    can it send several frames in one write, which long streams need to be fast:
    `send_texts`.
    """

    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)
        if scope is not None:
            scope["extensions"][ABORT_EXTENSION] = {
                "abort": self._llmkit_abort,
                "denied": self._llmkit_denied,
                "send_texts": self._llmkit_send_texts,
            }

    async def _llmkit_send_texts(self, texts: list[str]) -> None:
        """Text frames as consecutive `websocket.send` messages would give, in one write."""
        await self.writable.wait()
        if self.disconnected:
            raise ClientDisconnected()
        if self.close_sent or not self.handshake_complete or self.initial_response is not None:
            raise RuntimeError("Unexpected ASGI message 'websocket.send'.")
        try:
            for text in texts:
                self.conn.send_text(text.encode())
        except InvalidState:
            raise ClientDisconnected() from None
        self.transport.write(b"".join(self.conn.data_to_send()))

    def start_keepalive(self) -> None:
        """Server pings with a pong deadline, as the server's settings say when we accept."""
        core = getattr(self.config, "llmkit_core", None)
        if isinstance(core, ServerCore):
            self.ping_interval = core.ws_ping_interval
            self.ping_timeout = core.ws_pong_timeout
        super().start_keepalive()

    def keepalive_timeout(self) -> None:
        """No pong in time: close 1011 "keepalive ping timeout" (uvicorn's), counted."""
        core = getattr(self.config, "llmkit_core", None)
        if isinstance(core, ServerCore) and not (self.close_sent or self.transport.is_closing()):
            core.stats.ping_timeout()
        super().keepalive_timeout()

    def _llmkit_denied(self) -> None:
        # uvicorn does not mark a handshake answered with `websocket.http.response` as
        # complete and then logs an error when the app returns; the denial is intended.
        self.handshake_complete = True

    def _llmkit_abort(self) -> None:
        self.handshake_complete = True  # no 500 answer for an upgrade we drop on purpose
        self.close_sent = True
        self.transport.close()


def _config(app: ResponsesApp, host: str, log_level: str) -> uvicorn.Config:
    config = uvicorn.Config(
        app,
        host=host,
        log_level=log_level,
        log_config=None,
        ws=_WebSocketProtocol,
        ws_max_size=1 << 30,
        ws_ping_interval=None,
        ws_ping_timeout=None,
        lifespan="on",
        access_log=False,
        http="h11",
        timeout_graceful_shutdown=1,
        server_header=False,
    )
    config.llmkit_core = app.core  # type: ignore[attr-defined]  # read by the protocol class
    return config


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio only sets TCP_NODELAY on accepted sockets whose proto
    # is TCP, and without it every small event waits on Nagle + delayed ACK (~40 ms).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.listen(128)
    sock.setblocking(False)
    return sock


class ResponsesServer:
    """A local Responses API server (HTTP SSE, JSON and WebSocket on one port).

    It also serves Chat Completions (`POST /v1/chat/completions`) with the same models.

    Use it as a context manager: it starts uvicorn in a daemon thread on `host:port`
    (port 0 picks a free port) and stops it on exit. See the `llmkit.testing` docstring
    for the scripted models, the semantics and the faults.

    With ``ssl_context`` (a server-side `ssl.SSLContext` holding its certificate) it
    serves HTTPS and WSS instead, for tests of TLS settings (``https://`` `base_url`).

    Simulated latency: each response waits ``ttft + cost_per_input_token * uncached``
    seconds before its first output, then ``token_delay`` per streamed delta. ``uncached``
    is the number of input tokens the model must process: all of them, except over a
    WebSocket whose `previous_response_id` names a head the connection holds in memory
    (a lane's latest response, §3.1), which spares that head's whole conversation; a
    response hydrated from the ``store: true`` store spares nothing (PROTOCOL.md §3.1:
    "works but loses the latency benefit"), and no prefix cache across requests is
    modelled. Both defaults are 0, so tests run fast; each request's record keeps its
    ``input_tokens``, ``uncached_tokens`` and ``first_token_delay``.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        ttft: float = 0.0,
        token_delay: float = 0.0,
        cost_per_input_token: float = 0.0,
        keepalive_interval: float | None = None,
        max_connection_age: float | None = None,
        api_key: str | None = None,
        log_level: str = "warning",
        ssl_context: ssl.SSLContext | None = None,
        ws_lanes: LaneMode = "lanes",
        ws_max_in_flight: int = 16,
        ws_max_lanes: int = 32,
        ws_head_eviction: HeadEviction = "end",
        ws_when_busy: BusyPolicy = "queue",
        ws_preflight_evicts: bool = True,
        ws_ping_interval: float | None = None,
        ws_pong_timeout: float | None = None,
        ws_fake_warmups: bool = False,
        record_bodies: bool = False,
        steering: bool = True,
    ) -> None:
        self.host = host
        self.port = port
        self._ssl_context = ssl_context
        self._core = ServerCore(
            ttft=ttft,
            token_delay=token_delay,
            keepalive_interval=keepalive_interval,
            max_connection_age=max_connection_age,
            api_key=api_key,
        )
        self.cost_per_input_token = cost_per_input_token
        self.ws_lanes = ws_lanes
        self.ws_max_in_flight = ws_max_in_flight
        self.ws_max_lanes = ws_max_lanes
        self.ws_head_eviction = ws_head_eviction
        self.ws_when_busy = ws_when_busy
        self.ws_preflight_evicts = ws_preflight_evicts
        self.ws_ping_interval = ws_ping_interval
        self.ws_pong_timeout = ws_pong_timeout
        self.ws_fake_warmups = ws_fake_warmups
        self.record_bodies = record_bodies
        self.steering = steering
        self._app = ResponsesApp(self._core)
        self._log_level = log_level
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self._error: BaseException | None = None

    # -- configuration that tests may change while the server runs --------------------------
    @property
    def ttft(self) -> float:
        return self._core.ttft

    @ttft.setter
    def ttft(self, value: float) -> None:
        self._core.ttft = value

    @property
    def token_delay(self) -> float:
        return self._core.token_delay

    @token_delay.setter
    def token_delay(self, value: float) -> None:
        self._core.token_delay = value

    @property
    def cost_per_input_token(self) -> float:
        """Seconds of prefill per input token the model must process (see the class)."""
        return self._core.cost_per_input_token

    @cost_per_input_token.setter
    def cost_per_input_token(self, value: float) -> None:
        if value < 0:
            raise ValueError("cost_per_input_token must be >= 0")
        self._core.cost_per_input_token = value

    @property
    def keepalive_interval(self) -> float | None:
        return self._core.keepalive_interval

    @keepalive_interval.setter
    def keepalive_interval(self, value: float | None) -> None:
        self._core.keepalive_interval = value

    @property
    def max_connection_age(self) -> float | None:
        return self._core.max_connection_age

    @max_connection_age.setter
    def max_connection_age(self, value: float | None) -> None:
        self._core.max_connection_age = value

    @property
    def api_key(self) -> str | None:
        return self._core.api_key

    @api_key.setter
    def api_key(self, value: str | None) -> None:
        self._core.api_key = value

    @property
    def ws_lanes(self) -> LaneMode:
        return self._core.ws_lanes

    @ws_lanes.setter
    def ws_lanes(self, value: LaneMode) -> None:
        if value not in LANE_MODES:
            raise ValueError(f"ws_lanes must be one of {LANE_MODES}")
        self._core.ws_lanes = value

    @property
    def ws_max_in_flight(self) -> int:
        return self._core.ws_max_in_flight

    @ws_max_in_flight.setter
    def ws_max_in_flight(self, value: int) -> None:
        if value < 1:
            raise ValueError("ws_max_in_flight must be >= 1")
        self._core.ws_max_in_flight = value

    @property
    def ws_max_lanes(self) -> int:
        return self._core.ws_max_lanes

    @ws_max_lanes.setter
    def ws_max_lanes(self, value: int) -> None:
        if value < 0:
            raise ValueError("ws_max_lanes must be >= 0")
        self._core.ws_max_lanes = value

    @property
    def ws_head_eviction(self) -> HeadEviction:
        return self._core.ws_head_eviction

    @ws_head_eviction.setter
    def ws_head_eviction(self, value: HeadEviction) -> None:
        if value not in ("end", "start"):
            raise ValueError("ws_head_eviction must be 'end' or 'start'")
        self._core.ws_head_eviction = value

    @property
    def ws_when_busy(self) -> BusyPolicy:
        return self._core.ws_when_busy

    @ws_when_busy.setter
    def ws_when_busy(self, value: BusyPolicy) -> None:
        if value not in ("queue", "error"):
            raise ValueError("ws_when_busy must be 'queue' or 'error'")
        self._core.ws_when_busy = value

    @property
    def ws_preflight_evicts(self) -> bool:
        return self._core.ws_preflight_evicts

    @ws_preflight_evicts.setter
    def ws_preflight_evicts(self, value: bool) -> None:
        self._core.ws_preflight_evicts = value

    @property
    def ws_ping_interval(self) -> float | None:
        return self._core.ws_ping_interval

    @ws_ping_interval.setter
    def ws_ping_interval(self, value: float | None) -> None:
        self._core.ws_ping_interval = value

    @property
    def ws_fake_warmups(self) -> bool:
        """A LiteLLM-style gateway in front (``llmkit.testing._gateway``): it answers
        ``generate: false`` itself (``resp_warmup_…``, 0 input tokens, nothing kept) and
        drops such an id from a later ``previous_response_id``."""
        return self._core.ws_fake_warmups

    @ws_fake_warmups.setter
    def ws_fake_warmups(self, value: bool) -> None:
        self._core.ws_fake_warmups = value

    @property
    def steering(self) -> bool:
        """Whether the models accept ``response.steer`` (False: a model without steering,
        every steer is answered ``steering_not_supported``)."""
        return self._core.steering

    @steering.setter
    def steering(self, value: bool) -> None:
        self._core.steering = value

    @property
    def ws_pong_timeout(self) -> float | None:
        return self._core.ws_pong_timeout

    @ws_pong_timeout.setter
    def ws_pong_timeout(self, value: float | None) -> None:
        self._core.ws_pong_timeout = value

    @property
    def record_bodies(self) -> bool:
        """Keep each request's decoded body in its `RequestRecord` (``body``), to check
        what a client sent; off by default, since long runs would keep them all."""
        return self._core.engine.record_bodies

    @record_bodies.setter
    def record_bodies(self, value: bool) -> None:
        self._core.engine.record_bodies = value

    # -- introspection ----------------------------------------------------------------------
    @property
    def stats(self) -> ServerStats:
        return self._core.stats

    @property
    def faults(self) -> Faults:
        return self._core.faults

    @property
    def app(self) -> ResponsesApp:
        """The ASGI application (to mount it under another server)."""
        return self._app

    @property
    def base_url(self) -> str:
        scheme = "http" if self._ssl_context is None else "https"
        return f"{scheme}://{self._netloc()}/v1"

    @property
    def ws_url(self) -> str:
        scheme = "ws" if self._ssl_context is None else "wss"
        return f"{scheme}://{self._netloc()}/v1/responses"

    def _netloc(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def reset(self) -> None:
        """Forget everything: stats, faults, stored responses; close open WebSockets."""
        self._core.reset()

    def replay_next(self, source: bytes | str | Path, n: int = 1) -> None:
        """Make the next `n` responses replay a recorded SSE body (bytes or a file path)."""
        self._core.faults.replay(read_replay_source(source), n)

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> ResponsesServer:
        """Bind, start uvicorn in a daemon thread and wait until it serves."""
        if self._thread is not None:
            raise RuntimeError("server already started")
        self._socket = _bind(self.host, self.port)
        self.port = int(self._socket.getsockname()[1])
        config = _config(self._app, self.host, self._log_level)
        if self._ssl_context is not None:
            # uvicorn builds a context only from files; a loaded config is not loaded
            # again, so the caller's context is what its server listens with.
            config.load()
            config.ssl = self._ssl_context
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._run, name="llmkit-responses-server", daemon=True
        )
        self._thread.start()
        if not self._app.started.wait(_START_TIMEOUT) or self._error is not None:
            self.stop()
            raise RuntimeError(f"local Responses server failed to start: {self._error!r}")
        return self

    def _run(self) -> None:
        assert self._server is not None
        assert self._socket is not None
        try:
            asyncio.run(self._server.serve(sockets=[self._socket]))
        except BaseException as exc:  # reported by start()
            self._error = exc
            self._app.started.set()

    def stop(self) -> None:
        """Close WebSockets, stop uvicorn and join its thread (bounded)."""
        if self._server is not None:
            self._core.close_all()
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(_STOP_TIMEOUT)
            if self._thread.is_alive() and self._server is not None:
                self._server.force_exit = True
                self._thread.join(_STOP_TIMEOUT)
        if self._socket is not None:
            self._socket.close()
        self._thread = self._server = self._socket = None

    def __enter__(self) -> ResponsesServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def serve_forever(self, ready: Callable[[ResponsesServer], None] | None = None) -> None:
        """Run in the foreground until interrupted (the `python -m llmkit serve` command).

        `ready` is called once the socket listens, e.g. to print `base_url`.
        """
        sock = _bind(self.host, self.port)
        self.port = int(sock.getsockname()[1])
        if ready is not None:
            ready(self)
        config = _config(self._app, self.host, self._log_level)
        if self._ssl_context is not None:
            # uvicorn builds a context only from files; a loaded config is not loaded
            # again, so the caller's context is what its server listens with.
            config.load()
            config.ssl = self._ssl_context
        self._server = uvicorn.Server(config)
        try:
            asyncio.run(self._server.serve(sockets=[sock]))
        finally:
            self._server = None
            sock.close()
