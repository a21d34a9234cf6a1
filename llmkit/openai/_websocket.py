"""Responses WebSocket mode over threads: the sync I/O shell of ``_session``.

Every decision (which socket and lane, what to send, what a failure means, what the
lane's cache holds afterwards) is made in ``_session``; this module waits for room,
opens and probes connections with websocket-client and runs the protocol loop over the
lane's frames. A call is placed only when iteration starts, so a stream that is never
iterated holds nothing; its lane is settled on every way out of the attempt, also when
the stream is abandoned.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

from llmkit._core.run import run_protocol
from llmkit._deadline import Deadline
from llmkit.exceptions import LLMKitError
from llmkit.messages import WarmupResult
from llmkit.openai._lanes import Placement
from llmkit.openai._recovery import Cooldown
from llmkit.openai._session import CooldownGate, Lanes, Turn
from llmkit.openai._steer import SteerControl
from llmkit.stream import Collector, Finish, StreamPart
from llmkit.transports.base import Connection, ConnectionOpener

__all__ = ["WebSocketSession"]

JSON = dict[str, Any]
HTTPTurn = Callable[[JSON, str, Deadline | None, Collector], Iterator[StreamPart]]


class WebSocketSession:
    """All WebSocket state of one provider: its sockets and lanes, and the cool-down.

    Args:
        transport: Opens the connections (`WebSocketTransport` in production).
        max_connections: Sockets kept open at most; calls beyond their room wait.
        max_age: Seconds after which a connection takes no new request.
        wait_timeout: Longest wait for room on a socket.
        cooldown: When to try WebSocket again after a failed connect.
        lanes: Run several responses per socket on ``stream_id`` lanes where the server
            supports them (False: one at a time).
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
        self._lanes: Lanes[Connection] = Lanes(max_connections, wait_timeout, lanes=lanes)
        self._max_age = max_age
        self._gate = CooldownGate(cooldown)

    def stream(
        self,
        body: JSON,
        http: HTTPTurn,
        deadline: Deadline | None,
        collector: Collector,
        steering: SteerControl | None = None,
    ) -> Iterator[StreamPart]:
        """Serve one turn over WebSocket, or over ``http`` when it provably never started.

        ``deadline`` bounds every wait: for room, connect, each frame, the HTTP fallback.
        Every attempt, and the HTTP fallback, folds into the call's ``collector``.
        ``steering``: the call's (`Stream.steer`); settled however the turn ends.
        """
        try:
            if self._gate.active():
                yield from http(body, self._gate.reason, deadline, collector)
                return
            turn = self._turn(body, warmup=False, collector=collector, steering=steering)
            yield from self._attempts(turn, deadline)
            if turn.failure is not None:
                yield from http(body, turn.fallback_reason(), deadline, collector)
        finally:
            if steering is not None:
                steering.finish()

    def warmup(self, body: JSON, deadline: Deadline | None = None) -> WarmupResult:
        """Send ``body`` with ``generate: false``; its response becomes the lane's head."""
        self._lanes.refuse_if_closed()
        if self._gate.active():
            return WarmupResult.skipped()
        turn = self._turn(body, warmup=True, collector=Collector())
        finishes = [part for part in self._attempts(turn, deadline) if isinstance(part, Finish)]
        return turn.warmup_result(finishes)

    def connections(self) -> list[Connection]:
        """The open connections (for tests and diagnostics)."""
        return self._lanes.connections()

    def close(self) -> None:
        """Close every connection, and the transport (its keepalive thread)."""
        self._lanes.close()
        self._transport.close()

    def _turn(
        self,
        body: JSON,
        *,
        warmup: bool,
        collector: Collector,
        steering: SteerControl | None = None,
    ) -> Turn[Connection]:
        return Turn(
            self._lanes, body, warmup=warmup, max_age=self._max_age, gate=self._gate,
            collector=collector, steering=steering,
        )  # fmt: skip

    def _attempts(self, turn: Turn[Connection], deadline: Deadline | None) -> Iterator[StreamPart]:
        """Run the turn; `Turn.attempt` decides whether an error is raised, resent or
        sent over HTTP instead."""
        while not turn.over:
            placement = self._place(turn, deadline)
            connection = self._connection(turn, placement, deadline)
            if connection is None:
                continue  # placed again, or (turn.over) the turn goes over HTTP
            with turn.attempt(placement, connection) as attempt:
                assert attempt.end is not None
                payloads = connection.receive(placement.stream_id, deadline, attempt.end)
                if turn.steering is not None:
                    turn.steering.bind(connection.send_text)
                payloads.sent(connection.send_text(attempt.text))
                attempt.sent(payloads)
                # run_protocol returns only after completed/incomplete; else it raises.
                yield from run_protocol(payloads, attempt.meter, attempt.protocol)

    def _place(self, turn: Turn[Connection], deadline: Deadline | None) -> Placement[Connection]:
        """The turn's placement; waits for room at most the pool timeout, within the
        call's deadline."""
        found = turn.place()
        if isinstance(found, Placement):
            return found
        lanes, waiter, placed = self._lanes, found, threading.Event()
        try:
            if lanes.arm(waiter, placed.set):
                wait = lanes.wait_timeout
                placed.wait(wait if deadline is None else deadline.cap(wait))
        except BaseException:  # the deadline ran out, or an interrupt: give it back
            lanes.give_up(waiter)
            raise
        return lanes.waited(waiter, deadline)

    def _connection(
        self, turn: Turn[Connection], placement: Placement[Connection], deadline: Deadline | None
    ) -> Connection | None:
        """The open connection for ``placement``: a new one, or the pooled one if still
        usable. None: the turn goes over HTTP (``turn.over``) or is placed again."""
        if not placement.connect:
            connection = turn.reusable(placement)
            if connection is None or not turn.must_probe(placement):
                return connection
            return connection if turn.alive(placement, connection.probe()) else None
        try:
            self._lanes.refuse_if_closed()  # no reconnect or resend after the provider closed
            connection = self._transport.connect(deadline)
        except LLMKitError as exc:
            if not turn.connect_failed(placement, exc, deadline):
                raise
            return None
        except BaseException:
            self._lanes.cancel(placement)
            raise
        turn.connected(placement, connection)
        return connection
