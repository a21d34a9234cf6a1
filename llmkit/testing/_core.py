"""What the HTTP and WebSocket routes of the local server share.

`ServerCore` is the state one server instance shares between its event-loop thread and
the test thread that reads stats and arms faults; with it, the ASGI types, the paths and
the request helpers (headers, request ids, the 401 answer) of both routes. The routes
(`_http`, `_ws`) and the application (`_app`) import this module, never each other.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Protocol

from llmkit.testing._engine import Engine
from llmkit.testing._events import ApiError
from llmkit.testing._faults import Faults, ResponseFaults
from llmkit.testing._lanes import BusyPolicy, HeadEviction, LaneMode, LaneSettings
from llmkit.testing._state import ResponseStore, ServerStats
from llmkit.testing._stream import StreamConfig, first_token_delay

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
RESPONSES_PATH = "/v1/responses"
CHAT_PATH = "/v1/chat/completions"
ABORT_EXTENSION = "llmkit.abort"
# Stream events are written in batches of about this many bytes when no pause separates
# them (see `_stream`): a write per event dominated the cost of long answers.
BATCH_BYTES = 64 * 1024


class Closable(Protocol):
    """What the core needs from a live WebSocket connection."""

    @property
    def busy(self) -> bool: ...

    def request_close(self, code: int, reason: str) -> None: ...


class ServerCore:
    """Configuration and shared state of one server (read by the test thread too)."""

    def __init__(
        self,
        *,
        ttft: float,
        token_delay: float,
        cost_per_input_token: float = 0.0,
        keepalive_interval: float | None,
        max_connection_age: float | None,
        api_key: str | None,
    ) -> None:
        self.ttft = ttft
        self.token_delay = token_delay
        self.cost_per_input_token = cost_per_input_token
        self.keepalive_interval = keepalive_interval
        self.max_connection_age = max_connection_age
        self.api_key = api_key
        # WebSocket lanes (`_lanes`, read when a connection opens) and server pings (read
        # by the protocol class of `_server` when a connection opens; None = off).
        self.ws_lanes: LaneMode = "lanes"
        self.ws_max_in_flight = 16
        self.ws_max_lanes = 32
        self.ws_head_eviction: HeadEviction = "end"
        self.ws_when_busy: BusyPolicy = "queue"
        self.ws_preflight_evicts = True
        self.ws_ping_interval: float | None = None
        self.ws_pong_timeout: float | None = None
        self.ws_fake_warmups = False  # a gateway answers warm-ups itself (`_gateway`)
        self.steering = True  # False: every `response.steer` is `steering_not_supported`
        self.store = ResponseStore()
        self.stats = ServerStats()
        self.faults = Faults(close_idle=self.close_idle)
        self.engine = Engine(self.store, self.stats, self.faults, self.first_token_delay)
        self._lock = threading.Lock()
        self._connections: dict[int, Closable] = {}

    def first_token_delay(self, uncached_tokens: int) -> float:
        """The time to first token of a response whose model reads `uncached_tokens`."""
        return first_token_delay(self.ttft, self.cost_per_input_token, uncached_tokens)

    def stream_config(self, faults: ResponseFaults, ttft: float) -> StreamConfig:
        """Timing of one response; `ttft` is its `Production.first_token_delay`."""
        return StreamConfig(
            ttft=ttft,
            token_delay=faults.slow if faults.slow is not None else self.token_delay,
            keepalive_interval=self.keepalive_interval,
            unknown_events=self.faults.unknown_events,
            drop_after=faults.drop_after,
        )

    def lane_settings(self) -> LaneSettings:
        return LaneSettings(
            mode=self.ws_lanes,
            max_in_flight=self.ws_max_in_flight,
            max_lanes=self.ws_max_lanes,
            head_eviction=self.ws_head_eviction,
            when_busy=self.ws_when_busy,
            preflight_evicts=self.ws_preflight_evicts,
        )

    def register(self, conn_id: int, conn: Closable) -> None:
        with self._lock:
            self._connections[conn_id] = conn

    def unregister(self, conn_id: int) -> None:
        with self._lock:
            self._connections.pop(conn_id, None)

    def close_idle(self) -> int:
        with self._lock:
            idle = [c for c in self._connections.values() if not c.busy]
        for conn in idle:
            conn.request_close(1001, "idle connection closed")
        return len(idle)

    def close_all(self) -> None:
        with self._lock:
            conns = list(self._connections.values())
            self._connections.clear()
        for conn in conns:
            conn.request_close(1001, "server reset")

    def reset(self) -> None:
        self.close_all()
        self.stats.clear()
        self.faults.reset()
        self.store.clear()

    def authorized(self, scope: Scope) -> bool:
        if self.api_key is None:
            return True
        return header(scope, "authorization") == f"Bearer {self.api_key}"


def header(scope: Scope, name: str) -> str | None:
    wanted = name.encode("latin-1")
    for key, value in scope.get("headers", []):
        if key.lower() == wanted:
            return bytes(value).decode("latin-1")
    return None


def request_id() -> str:
    return "req_" + secrets.token_hex(16)


def unauthorized(scope: Scope) -> ApiError:
    given = header(scope, "authorization")
    if not given:
        message = (
            "You didn't provide an API key. You need to provide your API key in an "
            "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
        )
    else:
        message = "Incorrect API key provided. You can find your API key at your provider."
    return ApiError(401, message, code="invalid_api_key")
