"""Shared state of the local server: the response store and the statistics.

The server runs its event loop in another thread than the test that reads these objects,
so every mutable structure here is guarded by a lock and every public getter returns an
immutable snapshot.
"""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass, field
from typing import Any, Literal

Transport = Literal["http", "websocket"]
Endpoint = Literal["responses", "chat"]


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
    number of messages and `response_id` the ``chatcmpl-`` id). `body` is the decoded
    request (the `response.create` frame over WebSocket) when the server records bodies
    (``ResponsesServer(record_bodies=True)``), else None.
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
    compacted: bool = False
    """Whether the response began with a compaction item (``context_management``)."""
    body: dict[str, Any] | None = field(default=None, repr=False, compare=False)
    input_tokens: int = 0
    uncached_tokens: int = 0
    first_token_delay: float = 0.0
    successor_of: str | None = None
    """A response the server started by itself after steering (§2.3): the steered
    response it continues (its request has no frame: ``bytes_received`` is 0)."""


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
    lane's head), `ping_timeouts` (sockets closed for a missing pong). The cost model:
    `input_tokens` and `uncached_tokens` (what the models had to process), summed over
    the requests that reached a model; each `RequestRecord` also has the
    `first_token_delay` computed from them.
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
        self._compactions = 0
        self._violations = 0
        self._opened = 0
        self._ping_timeouts = 0
        self._steers = 0
        self._steers_failed = 0

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
    def compactions(self) -> int:
        """Responses that began with a compaction item (``context_management``)."""
        with self._lock:
            return self._compactions

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
    def input_tokens(self) -> int:
        with self._lock:
            return sum(r.input_tokens for r in self._records.values())

    @property
    def uncached_tokens(self) -> int:
        with self._lock:
            return sum(r.uncached_tokens for r in self._records.values())

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

    @property
    def steers(self) -> int:
        """``response.steer`` frames accepted (`steers_failed`: answered with
        ``response.steer.failed`` at once)."""
        with self._lock:
            return self._steers

    @property
    def steers_failed(self) -> int:
        with self._lock:
            return self._steers_failed

    def count_steer(self, conn_id: int, *, failed: bool) -> None:
        with self._lock:
            if conn_id not in self._conns:
                return  # a connection from before the last reset
            if failed:
                self._steers_failed += 1
            else:
                self._steers += 1

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
        compaction: bool = False,
    ) -> None:
        with self._lock:
            conn = self._conns.get(conn_id or 0)
            if conn is None and conn_id is not None:
                return  # a connection from before the last reset
            self._generations += generation
            self._warmups += warmup
            self._compactions += compaction
            self._violations += violations
            if conn is not None:
                conn.generations += generation
                conn.warmups += warmup
                conn.violations += violations

    def clear(self) -> None:
        with self._lock:
            self._reset_fields()
