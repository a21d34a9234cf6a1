"""Responses WebSocket mode over threads: the sync I/O shell of ``_session``.

Every decision (which connection, what to send, what a failure means, what the cache
holds afterwards) is made in ``_session``; this module opens, leases, probes and closes
connections with websocket-client and runs the protocol loop. The lease is taken only
when iteration starts, so a stream that is never iterated holds nothing, and released
in ``finally``, also when a stream is abandoned.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from llmkit._core.run import run_protocol
from llmkit._deadline import Deadline
from llmkit.exceptions import LLMKitError
from llmkit.messages import WarmupResult
from llmkit.openai._recovery import Cooldown
from llmkit.openai._session import CooldownGate, Slot, Slots, Turn
from llmkit.stream import Collector, Finish, StreamPart
from llmkit.transports.base import Connection, ConnectionOpener

__all__ = ["WebSocketSession"]

JSON = dict[str, Any]
HTTPTurn = Callable[[JSON, str, Deadline | None, Collector], Iterator[StreamPart]]


class _Pool:
    """`Slots` behind a condition variable: a call waits for a slot, at most ``wait_timeout``."""

    def __init__(self, size: int, wait_timeout: float | None) -> None:
        self._slots: Slots[Connection] = Slots(size, wait_timeout)
        self._cond = threading.Condition()

    def acquire(self, body: Mapping[str, Any], call: Deadline | None) -> Slot[Connection]:
        """Lease a slot for ``body``; waits for one to free up, within the call's deadline."""
        wait = self._slots.wait_timeout
        deadline = None if wait is None else time.monotonic() + wait
        with self._cond:
            while (slot := self._slots.lease(body)) is None:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise self._slots.busy_error()
                self._cond.wait(remaining if call is None else call.cap(remaining))
            return slot

    def release(self, slot: Slot[Connection]) -> None:
        """Return a leased slot."""
        with self._cond:
            self._slots.release(slot)
            self._cond.notify()

    def admit(self, slot: Slot[Connection], connection: Connection) -> None:
        """Keep a new connection in ``slot``; refused (and closed) once the pool closed."""
        with self._cond:
            self._slots.admit(slot, connection)

    def refuse_if_closed(self) -> None:
        """Raise the provider's "closed" `UsageError` once the pool closed."""
        self._slots.refuse_if_closed()

    def close(self) -> None:
        """Close every connection; waiting and later calls are refused."""
        with self._cond:
            self._slots.close()
            self._cond.notify_all()


class WebSocketSession:
    """All WebSocket state of one provider: the pool, its chains and the cool-down.

    Args:
        transport: Opens the connections (`WebSocketTransport` in production).
        max_connections: Pool size; calls beyond it wait for a free connection.
        max_age: Seconds after which a connection is replaced before sending.
        wait_timeout: Longest wait for a free connection.
        cooldown: When to try WebSocket again after a failed connect.
    """

    def __init__(
        self,
        *,
        transport: ConnectionOpener,
        max_connections: int,
        max_age: float,
        wait_timeout: float | None,
        cooldown: Cooldown,
        lanes: bool = True,
    ) -> None:
        self._transport = transport
        self._pool = _Pool(max_connections, wait_timeout)
        self._max_age = max_age
        self._gate = CooldownGate(cooldown)
        self.lanes = lanes

    def stream(
        self, body: JSON, http: HTTPTurn, deadline: Deadline | None, collector: Collector
    ) -> Iterator[StreamPart]:
        """Serve one turn over WebSocket, or over ``http`` when it provably never started.

        ``deadline`` bounds every wait: the pool, connect, each frame, the HTTP fallback.
        Every attempt, and the HTTP fallback, folds into the call's ``collector``.
        """
        if self._gate.active():
            yield from http(body, self._gate.reason, deadline, collector)
            return
        turn = self._turn(body, warmup=False, deadline=deadline, collector=collector)
        try:
            yield from self._attempts(turn, deadline)
        finally:
            self._pool.release(turn.slot)
        if turn.failure is not None:
            yield from http(body, turn.fallback_reason(), deadline, collector)

    def warmup(self, body: JSON, deadline: Deadline | None = None) -> WarmupResult:
        """Send ``body`` with ``generate: false``; its response becomes the chain head."""
        self._pool.refuse_if_closed()
        if self._gate.active():
            return WarmupResult.skipped()
        turn = self._turn(body, warmup=True, deadline=deadline, collector=Collector())
        try:
            attempts = self._attempts(turn, deadline)
            finishes = [part for part in attempts if isinstance(part, Finish)]
        finally:
            self._pool.release(turn.slot)
        return turn.warmup_result(finishes)

    def close(self) -> None:
        """Close every connection, and the transport (its keepalive thread)."""
        self._pool.close()
        self._transport.close()

    def _turn(
        self, body: JSON, *, warmup: bool, deadline: Deadline | None, collector: Collector
    ) -> Turn[Connection]:
        slot = self._pool.acquire(body, deadline)
        return Turn(
            slot, body, warmup=warmup, max_age=self._max_age, gate=self._gate, collector=collector
        )

    def _attempts(self, turn: Turn[Connection], deadline: Deadline | None) -> Iterator[StreamPart]:
        """Run the turn; `Turn.attempt` decides whether an error is raised, resent or
        sent over HTTP instead."""
        while not turn.over:
            reused = self._reusable(turn)
            connection = reused or self._open(turn, deadline)
            if connection is None:
                return  # turn.failure says why: the turn goes over HTTP
            with turn.attempt(connection, reused=reused is not None) as attempt:
                size = connection.send_text(attempt.text)
                payloads = attempt.sent(connection.payloads(size, deadline))
                # run_protocol returns only after completed/incomplete; else it raises.
                yield from run_protocol(payloads, attempt.meter, attempt.protocol)

    @staticmethod
    def _reusable(turn: Turn[Connection]) -> Connection | None:
        connection = turn.reusable()
        if connection is not None and turn.alive(connection.probe()):
            return connection
        return None

    def _open(self, turn: Turn[Connection], deadline: Deadline | None) -> Connection | None:
        self._pool.refuse_if_closed()  # no reconnect or resend after the provider closed
        try:
            connection = self._transport.connect(deadline)
        except LLMKitError as exc:
            if not turn.connect_failed(exc, deadline):
                raise
            return None
        self._pool.admit(turn.slot, connection)
        return connection
