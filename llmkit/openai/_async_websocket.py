"""Responses WebSocket mode over asyncio: the async I/O shell of ``_session``.

Every decision (which socket and lane, what to send, what a failure means, what the
lane's cache holds afterwards) is made in ``_session``, as for the threaded session;
this module awaits room, connects, sends and frames. Cancellation is an abandoned
stream like any other: a `asyncio.CancelledError` while a turn streams drains its lane
(a socket with lanes) or closes its socket, and a call cancelled while it waits for
room or a connect gives its placement back, so the next call is correct.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import aclosing
from typing import Any

from llmkit._closing import bind_loop
from llmkit._core.async_run import arun_protocol
from llmkit._core.run import opening
from llmkit._deadline import Deadline
from llmkit.exceptions import LLMKitError
from llmkit.messages import WarmupResult
from llmkit.openai._lanes import Placement
from llmkit.openai._recovery import Cooldown
from llmkit.openai._session import CooldownGate, Lanes, Turn
from llmkit.openai._steer import SteerControl
from llmkit.stream import Collector, Finish, StreamPart
from llmkit.transports.base import AsyncConnection, AsyncConnectionOpener

__all__ = ["AsyncWebSocketSession"]

JSON = dict[str, Any]
AsyncHTTPTurn = Callable[[JSON, str, Deadline | None, Collector], AsyncGenerator[StreamPart, None]]


class AsyncWebSocketSession:
    """All WebSocket state of one `AsyncProvider`: its sockets and lanes, and the cool-down.

    Args: as `WebSocketSession`, with an async ``transport``.
    """

    def __init__(
        self,
        *,
        transport: AsyncConnectionOpener,
        max_connections: int,
        max_age: float,
        wait_timeout: float | None,
        cooldown: Cooldown,
        lanes: bool = True,
    ) -> None:
        self._transport = transport
        self._lanes: Lanes[AsyncConnection] = Lanes(max_connections, wait_timeout, lanes=lanes)
        self._max_age = max_age
        self._gate = CooldownGate(cooldown)
        self.loop: asyncio.AbstractEventLoop | None = None
        """The event loop of the first turn; the connections belong to it."""

    async def stream(
        self,
        body: JSON,
        http: AsyncHTTPTurn,
        max_duration: float | None,
        collector: Collector,
        warnings: tuple[str, ...] = (),
        steering: SteerControl | None = None,
    ) -> AsyncGenerator[StreamPart, None]:
        """Serve one turn over WebSocket, or over ``http`` when it provably never started.

        ``max_duration`` starts the call's deadline when iteration starts; it bounds
        every wait: for room, connect, each frame, the HTTP fallback. The call's
        ``warnings`` come first; every attempt, and the HTTP fallback, folds into the
        call's ``collector``. ``steering``: as for `WebSocketSession.stream`.
        """
        try:
            for part in opening(collector, warnings):
                yield part
            deadline = Deadline.start(max_duration)
            if self._gate.active():
                reason = self._gate.reason
                async with aclosing(http(body, reason, deadline, collector)) as parts:
                    async for part in parts:
                        yield part
                return
            turn = self._turn(body, warmup=False, collector=collector, steering=steering)
            async with aclosing(self._attempts(turn, deadline)) as parts:
                async for part in parts:
                    yield part
            if turn.failure is not None:
                reason = turn.fallback_reason()
                async with aclosing(http(body, reason, deadline, collector)) as parts:
                    async for part in parts:
                        yield part
        finally:
            if steering is not None:
                steering.finish()

    async def warmup(self, body: JSON, deadline: Deadline | None = None) -> WarmupResult:
        """Send ``body`` with ``generate: false``; its response becomes the lane's head."""
        self._lanes.refuse_if_closed()
        if self._gate.active():
            return WarmupResult.skipped()
        turn = self._turn(body, warmup=True, collector=Collector())
        async with aclosing(self._attempts(turn, deadline)) as parts:
            finishes = [part async for part in parts if isinstance(part, Finish)]
        return turn.warmup_result(finishes)

    def connections(self) -> list[AsyncConnection]:
        """The open connections (for tests and diagnostics)."""
        return self._lanes.connections()

    def close(self) -> None:
        """Close every connection."""
        self._lanes.close()

    def _turn(
        self,
        body: JSON,
        *,
        warmup: bool,
        collector: Collector,
        steering: SteerControl | None = None,
    ) -> Turn[AsyncConnection]:
        self.loop = bind_loop(self.loop)
        return Turn(
            self._lanes, body, warmup=warmup, max_age=self._max_age, gate=self._gate,
            collector=collector, steering=steering,
        )  # fmt: skip

    async def _attempts(
        self, turn: Turn[AsyncConnection], deadline: Deadline | None
    ) -> AsyncGenerator[StreamPart, None]:
        """Run the turn; `Turn.attempt` decides whether an error is raised, resent or
        sent over HTTP instead."""
        while not turn.over:
            placement = await self._place(turn, deadline)
            connection = await self._connection(turn, placement, deadline)
            if connection is None:
                continue  # placed again, or (turn.over) the turn goes over HTTP
            with turn.attempt(placement, connection) as attempt:
                assert attempt.end is not None
                payloads = connection.receive(placement.stream_id, deadline, attempt.end)
                if turn.steering is not None:
                    turn.steering.bind_async(connection.send_text, _background)
                payloads.sent(await connection.send_text(attempt.text))
                attempt.sent(payloads)
                parts = arun_protocol(payloads, attempt.meter, attempt.protocol)
                async with aclosing(parts):
                    async for part in parts:
                        yield part

    async def _place(
        self, turn: Turn[AsyncConnection], deadline: Deadline | None
    ) -> Placement[AsyncConnection]:
        """The turn's placement; waits for room at most the pool timeout, within the
        call's deadline. A task cancelled meanwhile gives back what it was handed."""
        found = turn.place()
        if isinstance(found, Placement):
            return found
        lanes, waiter, placed = self._lanes, found, asyncio.Event()
        wait = lanes.wait_timeout
        try:
            if lanes.arm(waiter, placed.set):
                async with asyncio.timeout(wait if deadline is None else deadline.cap(wait)):
                    await placed.wait()
        except TimeoutError:
            pass
        except BaseException:  # cancelled, or the deadline ran out: give it back
            lanes.give_up(waiter)
            raise
        return lanes.waited(waiter, deadline)

    async def _connection(
        self,
        turn: Turn[AsyncConnection],
        placement: Placement[AsyncConnection],
        deadline: Deadline | None,
    ) -> AsyncConnection | None:
        """As `WebSocketSession._connection`; a connect cancelled midway gives the
        placement back."""
        if not placement.connect:
            connection = turn.reusable(placement)
            if connection is None or not turn.must_probe(placement):
                return connection
            return connection if turn.alive(placement, await connection.probe()) else None
        try:
            self._lanes.refuse_if_closed()  # no reconnect or resend after the provider closed
            connection = await self._transport.connect(deadline)
        except LLMKitError as exc:
            if not turn.connect_failed(placement, exc, deadline):
                raise
            return None
        except BaseException:
            self._lanes.cancel(placement)
            raise
        turn.connected(placement, connection)
        return connection


_SENDING: set[asyncio.Task[Any]] = set()


def _background(send: Awaitable[Any]) -> None:
    """Run a steer's send (started by the protocol at ``response.created``) as a task;
    a failed send fails the connection, which the stream reports."""

    async def sending() -> None:
        with contextlib.suppress(LLMKitError):
            await send

    task = asyncio.get_running_loop().create_task(sending())
    _SENDING.add(task)
    task.add_done_callback(_SENDING.discard)
