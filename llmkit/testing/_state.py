"""Shared state of the local server: the response store, statistics and fault switches.

The server runs its event loop in another thread than the test that reads these objects,
so every mutable structure here is guarded by a lock and every public getter returns an
immutable snapshot.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

Transport = Literal["http", "websocket"]
Endpoint = Literal["responses", "chat"]
ErrorShape = Literal["nested", "flat"]


@dataclass(frozen=True, slots=True)
class StoredResponse:
    """A finished response and the full conversation it ends (its input plus its output).

    Chaining needs the whole conversation, not just the response, because the next turn's
    model input is this conversation followed by the new input items.
    """

    id: str
    conversation: tuple[dict[str, Any], ...]
    response: dict[str, Any]
    reasoning_ids: frozenset[str] = frozenset()


class ResponseStore:
    """Process-wide store of `store=true` responses (the slow path of §3.1)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[str, StoredResponse] = {}

    def put(self, entry: StoredResponse) -> None:
        with self._lock:
            self._items[entry.id] = entry

    def get(self, response_id: str) -> StoredResponse | None:
        with self._lock:
            return self._items.get(response_id)

    def knows_reasoning(self, item_id: str) -> bool:
        """Whether a stored response produced the reasoning item `item_id`."""
        with self._lock:
            return any(item_id in e.reasoning_ids for e in self._items.values())

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """What the server saw for one `response.create` (or one HTTP POST).

    `endpoint` is ``"chat"`` for `POST /v1/chat/completions` (then `input_items` is the
    number of messages and `response_id` the ``chatcmpl-`` id).
    """

    transport: Transport
    connection_id: int | None
    bytes_received: int
    input_items: int
    previous_response_id: str | None
    generate: bool
    response_id: str | None = None
    violations: int = 0
    status: str = "pending"
    endpoint: Endpoint = "responses"
    stream_id: str | None = None
    fork: bool = False


@dataclass(frozen=True, slots=True)
class ConnectionStats:
    """A snapshot of one WebSocket connection's counters."""

    connection_id: int
    generations: int
    warmups: int
    context_violations: int
    bytes_received: int
    requests: tuple[RequestRecord, ...]
    open: bool
    max_in_flight: int = 0
    lanes: tuple[str, ...] = ()
    forks: int = 0


@dataclass(slots=True)
class _Conn:
    generations: int = 0
    warmups: int = 0
    violations: int = 0
    bytes_received: int = 0
    records: list[int] = field(default_factory=list)
    open: bool = True
    max_in_flight: int = 0
    lanes: dict[str, None] = field(default_factory=dict)
    forks: int = 0


class ServerStats:
    """Counters a test can read while the server runs (thread-safe snapshots).

    `generations` counts billable model runs, failed ones included; warm-ups
    (`generate: false`) are counted separately because they bill no output. WebSocket
    lanes: `max_in_flight` (most responses in flight at once on one socket), `lanes_used`
    (distinct named lanes, summed over sockets), `forks` (creates chained on another
    lane's head), `ping_timeouts` (sockets closed for a missing pong).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # Ids are never reused, not even across `clear()`: a connection or request that was
        # still finishing during a reset must not update its successor's counters.
        self._next_conn = 1
        self._next_record = 0
        self._reset_fields()

    def _reset_fields(self) -> None:
        self._records: dict[int, RequestRecord] = {}
        self._conns: dict[int, _Conn] = {}
        self._generations = 0
        self._warmups = 0
        self._violations = 0
        self._opened = 0
        self._ping_timeouts = 0

    # -- reading --------------------------------------------------------------------------
    @property
    def generations(self) -> int:
        with self._lock:
            return self._generations

    @property
    def warmups(self) -> int:
        with self._lock:
            return self._warmups

    @property
    def connections_opened(self) -> int:
        with self._lock:
            return self._opened

    @property
    def context_violations(self) -> int:
        with self._lock:
            return self._violations

    @property
    def max_in_flight(self) -> int:
        with self._lock:
            return max((c.max_in_flight for c in self._conns.values()), default=0)

    @property
    def lanes_used(self) -> int:
        with self._lock:
            return sum(len(c.lanes) for c in self._conns.values())

    @property
    def forks(self) -> int:
        with self._lock:
            return sum(c.forks for c in self._conns.values())

    @property
    def ping_timeouts(self) -> int:
        with self._lock:
            return self._ping_timeouts

    @property
    def requests(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._records.values())

    @property
    def connections(self) -> list[ConnectionStats]:
        with self._lock:
            return [self._conn_view(cid) for cid in sorted(self._conns)]

    def connection(self, conn_id: int) -> ConnectionStats:
        """The counters of one WebSocket connection (ids start at 1 after each reset)."""
        with self._lock:
            if conn_id not in self._conns:
                raise KeyError(conn_id)
            return self._conn_view(conn_id)

    def _conn_view(self, cid: int) -> ConnectionStats:
        c = self._conns[cid]
        return ConnectionStats(
            connection_id=cid,
            generations=c.generations,
            warmups=c.warmups,
            context_violations=c.violations,
            bytes_received=c.bytes_received,
            requests=tuple(self._records[i] for i in c.records if i in self._records),
            open=c.open,
            max_in_flight=c.max_in_flight,
            lanes=tuple(c.lanes),
            forks=c.forks,
        )

    # -- writing (server side) ------------------------------------------------------------
    def open_connection(self) -> int:
        with self._lock:
            cid = self._next_conn
            self._next_conn += 1
            self._opened += 1
            self._conns[cid] = _Conn()
            return cid

    def close_connection(self, conn_id: int) -> None:
        with self._lock:
            if conn_id in self._conns:
                self._conns[conn_id].open = False

    def add_request(self, record: RequestRecord) -> int:
        with self._lock:
            index = self._next_record
            self._next_record += 1
            self._records[index] = record
            conn = self._conns.get(record.connection_id or 0)
            if conn is not None:
                conn.records.append(index)
                conn.bytes_received += record.bytes_received
            return index

    def update(self, index: int, *, only_pending: bool = False, **changes: Any) -> None:
        with self._lock:
            record = self._records.get(index)
            if record is not None and not (only_pending and record.status != "pending"):
                self._records[index] = dataclasses.replace(self._records[index], **changes)

    def lane_event(
        self, conn_id: int, *, in_flight: int = 0, lane: str | None = None, fork: bool = False
    ) -> None:
        """A WebSocket lane fact: responses now in flight, a named lane used, a fork."""
        with self._lock:
            conn = self._conns.get(conn_id)
            if conn is None:
                return
            conn.max_in_flight = max(conn.max_in_flight, in_flight)
            if lane is not None:
                conn.lanes[lane] = None
            conn.forks += fork

    def ping_timeout(self) -> None:
        with self._lock:
            self._ping_timeouts += 1

    def count(
        self,
        conn_id: int | None,
        *,
        generation: bool = False,
        warmup: bool = False,
        violations: int = 0,
    ) -> None:
        with self._lock:
            conn = self._conns.get(conn_id or 0)
            if conn is None and conn_id is not None:
                return  # a connection from before the last reset
            self._generations += generation
            self._warmups += warmup
            self._violations += violations
            if conn is not None:
                conn.generations += generation
                conn.warmups += warmup
                conn.violations += violations

    def clear(self) -> None:
        with self._lock:
            self._reset_fields()


@dataclass(frozen=True, slots=True)
class ErrorFault:
    """An armed `error` event: sent instead of the response."""

    code: str
    message: str
    status: int
    shape: ErrorShape
    param: str | None
    type: str


@dataclass(frozen=True, slots=True)
class HTTPRejection:
    """An armed HTTP error answer to `POST /v1/responses` or `/v1/chat/completions`."""

    status: int
    message: str
    code: str | None
    headers: dict[str, str]


@dataclass(frozen=True, slots=True)
class ResponseFaults:
    """The faults that apply to one response, taken (and disarmed) when it starts."""

    error: ErrorFault | None = None
    fail: tuple[str, str] | None = None
    drop_after: int | None = None
    slow: float | None = None
    replay: bytes | None = None


@dataclass(slots=True)
class _Armed:
    value: Any
    remaining: int
    include_warmups: bool = False


class Faults:
    """Fault switches; each one-shot fault applies to the next N matching requests.

    A response-level fault is taken when a request reaches the point where a real server
    would start a response (after validation and `previous_response_id` resolution).
    Warm-ups (`generate: false`) are skipped unless `include_warmups=True`, so a test that
    arms `fail_next()` is not silently disarmed by a client's automatic warm-up.
    """

    def __init__(self, close_idle: Callable[[], int] | None = None) -> None:
        self._lock = threading.Lock()
        self._close_idle = close_idle
        self._clear()

    def _clear(self) -> None:
        self._upgrades: list[_Armed] = []
        self._armed: dict[str, list[_Armed]] = {}
        self.max_frame_size: int | None = None
        self.unknown_events: bool = False

    def reset(self) -> None:
        with self._lock:
            self._clear()

    def _arm(self, kind: str, value: Any, n: int, include_warmups: bool) -> None:
        if n < 1:
            raise ValueError("n must be >= 1")
        with self._lock:
            self._armed.setdefault(kind, []).append(_Armed(value, n, include_warmups))

    # -- arming (test side) ---------------------------------------------------------------
    def reject_upgrades(self, n: int = 1, status: int | None = 503) -> None:
        """Refuse the next `n` WebSocket upgrades with `status`, or drop the TCP if None."""
        if n < 1:
            raise ValueError("n must be >= 1")
        with self._lock:
            self._upgrades.append(_Armed(status, n))

    def reject_requests(
        self,
        n: int = 1,
        status: int = 503,
        *,
        headers: dict[str, str] | None = None,
        code: str | None = None,
        message: str = "The server is overloaded. Please retry.",
    ) -> None:
        """Answer the next `n` HTTP POSTs (Responses or Chat) with `status` and a JSON error.

        `headers` go out with the answer (``retry-after``, ``x-should-retry``, ...).
        """
        error = HTTPRejection(status, message, code, dict(headers or {}))
        self._arm("http_status", error, n, True)

    def take_http_rejection(self) -> HTTPRejection | None:
        with self._lock:
            value: HTTPRejection | None = self._take("http_status", True)
            return value

    def drop_after(self, events: int, n: int = 1, *, include_warmups: bool = False) -> None:
        """Abort the connection after `events` events of each of the next `n` responses."""
        self._arm("drop", events, n, include_warmups)

    def fail_next(
        self,
        code: str = "server_error",
        message: str = "The server had an error while processing your request.",
        n: int = 1,
        *,
        include_warmups: bool = False,
    ) -> None:
        """Make the next `n` responses end in `response.failed` with this error."""
        self._arm("fail", (code, message), n, include_warmups)

    def error_next(
        self,
        code: str = "server_error",
        message: str = "The server had an error while processing your request.",
        status: int = 400,
        shape: ErrorShape = "nested",
        n: int = 1,
        *,
        param: str | None = None,
        error_type: str | None = None,
        include_warmups: bool = False,
    ) -> None:
        """Send an `error` event instead of the next `n` responses."""
        etype = error_type or ("server_error" if status >= 500 else "invalid_request_error")
        fault = ErrorFault(code, message, status, shape, param, etype)
        self._arm("error", fault, n, include_warmups)

    def slow(self, delay: float, n: int = 1) -> None:
        """Use `delay` seconds before every delta of the next `n` responses."""
        self._arm("slow", delay, n, False)

    def replay(self, body: bytes, n: int = 1) -> None:
        """Replay a recorded SSE body verbatim as the next `n` responses."""
        self._arm("replay", body, n, False)

    def close_idle(self) -> int:
        """Close every WebSocket connection that has no response in flight; returns how many."""
        return self._close_idle() if self._close_idle is not None else 0

    # -- taking (server side) -------------------------------------------------------------
    def take_upgrade_rejection(self) -> tuple[bool, int | None]:
        with self._lock:
            if not self._upgrades:
                return False, None
            armed = self._upgrades[0]
            armed.remaining -= 1
            if armed.remaining <= 0:
                self._upgrades.pop(0)
            return True, armed.value

    def _take(self, kind: str, warmup: bool) -> Any:
        queue = self._armed.get(kind, [])
        for armed in queue:
            if warmup and not armed.include_warmups:
                continue
            armed.remaining -= 1
            if armed.remaining <= 0:
                queue.remove(armed)
            return armed.value
        return None

    def take_response_faults(self, *, warmup: bool) -> ResponseFaults:
        with self._lock:
            error = self._take("error", warmup)
            if error is not None:
                return ResponseFaults(error=error)
            return ResponseFaults(
                fail=self._take("fail", warmup),
                drop_after=self._take("drop", warmup),
                slow=self._take("slow", warmup),
                replay=self._take("replay", warmup),
            )


def read_replay_source(source: bytes | str | Path) -> bytes:
    """Accept raw SSE bytes or a path to a recorded `.sse` file."""
    if isinstance(source, bytes):
        return source
    return Path(source).read_bytes()


def monotonic() -> float:
    return time.monotonic()
