"""Responses WebSocket mode over asyncio: the async I/O shell of ``_session``.

Every decision (which connection, what to send, what a failure means, what the cache
holds afterwards) is made in ``_session``, as for the threaded session; this module
awaits the connects, sends and frames. Cancellation is a failure like any other: a
`asyncio.CancelledError` while a turn streams closes its connection and drops its chain
(`Turn.settle`), and the lease is released in ``finally``, so the next call is correct.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable, Mapping
from contextlib import aclosing
from typing import Any

from llmkit._closing import bind_loop
from llmkit._core.async_run import arun_protocol
from llmkit._core.run import opening
from llmkit._deadline import Deadline
from llmkit.exceptions import LLMKitError
from llmkit.messages import WarmupResult
from llmkit.openai._recovery import Cooldown
from llmkit.openai._session import CooldownGate, Slot, Slots, Turn
from llmkit.stream import Collector, Finish, StreamPart
from llmkit.transports.base import AsyncConnection, AsyncConnectionOpener

__all__ = ["AsyncWebSocketSession"]

JSON = dict[str, Any]
AsyncHTTPTurn = Callable[[JSON, str, Deadline | None, Collector], AsyncGenerator[StreamPart, None]]


class _AsyncPool:
    """`Slots` for tasks of one event loop: a call waits for a slot, at most ``wait_timeout``.

    Leasing and releasing never await, so a cancelled task releases its slot from
    ``finally`` without a chance of being cancelled again half-way.
    """

    def __init__(self, size: int, wait_timeout: float | None) -> None:
        self._slots: Slots[AsyncConnection] = Slots(size, wait_timeout)
        self._released: asyncio.Event | None = None

    async def acquire(
        self, body: Mapping[str, Any], deadline: Deadline | None
    ) -> Slot[AsyncConnection]:
        """Lease a slot for ``body``; waits for one to free up, within the call's deadline."""
        wait = self._slots.wait_timeout
        try:
            async with asyncio.timeout(wait if deadline is None else deadline.cap(wait)):
                while (slot := self._slots.lease(body)) is None:
                    if self._released is None:
                        self._released = asyncio.Event()
                    self._released.clear()
                    await self._released.wait()
        except TimeoutError:
            if deadline is not None and deadline.expired():
                raise deadline.error() from None
            raise self._slots.busy_error() from None
        return slot

    def release(self, slot: Slot[AsyncConnection]) -> None:
        """Return a leased slot and wake the waiting calls."""
        self._slots.release(slot)
        if self._released is not None:
            self._released.set()

    def admit(self, slot: Slot[AsyncConnection], connection: AsyncConnection) -> None:
        """Keep a new connection in ``slot``; refused (and closed) once the pool closed."""
        self._slots.admit(slot, connection)

    def refuse_if_closed(self) -> None:
        """Raise the provider's "closed" `UsageError` once the pool closed."""
        self._slots.refuse_if_closed()

    def close(self) -> None:
        """Close every connection; waiting and later calls are refused."""
        self._slots.close()
        if self._released is not None:
            self._released.set()


class AsyncWebSocketSession:
    """All WebSocket state of one `AsyncProvider`: the pool, its chains and the cool-down.

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
        self._pool = _AsyncPool(max_connections, wait_timeout)
        self._max_age = max_age
        self._gate = CooldownGate(cooldown)
        self.lanes = lanes
        self.loop: asyncio.AbstractEventLoop | None = None
        """The event loop of the first turn; the connections belong to it."""

    async def stream(
        self,
        body: JSON,
        http: AsyncHTTPTurn,
        max_duration: float | None,
        collector: Collector,
        warnings: tuple[str, ...] = (),
    ) -> AsyncGenerator[StreamPart, None]:
        """Serve one turn over WebSocket, or over ``http`` when it provably never started.

        ``max_duration`` starts the call's deadline when iteration starts; it bounds
        every wait: the pool, connect, each frame, the HTTP fallback. The call's
        ``warnings`` come first; every attempt, and the HTTP fallback, folds into the
        call's ``collector``.
        """
        for part in opening(collector, warnings):
            yield part
        deadline = Deadline.start(max_duration)
        if self._gate.active():
            async with aclosing(http(body, self._gate.reason, deadline, collector)) as parts:
                async for part in parts:
                    yield part
            return
        turn = await self._turn(body, warmup=False, deadline=deadline, collector=collector)
        try:
            async with aclosing(self._attempts(turn, deadline)) as parts:
                async for part in parts:
                    yield part
        finally:
            self._pool.release(turn.slot)
        if turn.failure is not None:
            reason = turn.fallback_reason()
            async with aclosing(http(body, reason, deadline, collector)) as parts:
                async for part in parts:
                    yield part

    async def warmup(self, body: JSON, deadline: Deadline | None = None) -> WarmupResult:
        """Send ``body`` with ``generate: false``; its response becomes the chain head."""
        self._pool.refuse_if_closed()
        if self._gate.active():
            return WarmupResult.skipped()
        turn = await self._turn(body, warmup=True, deadline=deadline, collector=Collector())
        try:
            async with aclosing(self._attempts(turn, deadline)) as parts:
                finishes = [part async for part in parts if isinstance(part, Finish)]
        finally:
            self._pool.release(turn.slot)
        return turn.warmup_result(finishes)

    def close(self) -> None:
        """Close every connection."""
        self._pool.close()

    async def _turn(
        self, body: JSON, *, warmup: bool, deadline: Deadline | None, collector: Collector
    ) -> Turn[AsyncConnection]:
        self.loop = bind_loop(self.loop)
        slot = await self._pool.acquire(body, deadline)
        return Turn(
            slot, body, warmup=warmup, max_age=self._max_age, gate=self._gate, collector=collector
        )

    async def _attempts(
        self, turn: Turn[AsyncConnection], deadline: Deadline | None
    ) -> AsyncGenerator[StreamPart, None]:
        """Run the turn; `Turn.attempt` decides whether an error is raised, resent or
        sent over HTTP instead."""
        while not turn.over:
            connection = await self._reusable(turn)
            reused = connection is not None
            connection = connection or await self._open(turn, deadline)
            if connection is None:
                return  # turn.failure says why: the turn goes over HTTP
            with turn.attempt(connection, reused=reused) as attempt:
                size = await connection.send_text(attempt.text)
                payloads = attempt.sent(connection.payloads(size, deadline))
                parts = arun_protocol(payloads, attempt.meter, attempt.protocol)
                async with aclosing(parts):
                    async for part in parts:
                        yield part

    @staticmethod
    async def _reusable(turn: Turn[AsyncConnection]) -> AsyncConnection | None:
        connection = turn.reusable()
        if connection is not None and turn.alive(await connection.probe()):
            return connection
        return None

    async def _open(
        self, turn: Turn[AsyncConnection], deadline: Deadline | None
    ) -> AsyncConnection | None:
        self._pool.refuse_if_closed()  # no reconnect or resend after the provider closed
        try:
            connection = await self._transport.connect(deadline)
        except LLMKitError as exc:
            if not turn.connect_failed(exc, deadline):
                raise
            return None
        self._pool.admit(turn.slot, connection)
        return connection
