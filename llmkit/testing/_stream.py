"""Sending a response's events with realistic timing, keepalives and stream faults.

Shared by the SSE and the WebSocket handler: the transport passes an `emit` coroutine
that writes one event; this module decides when, renumbers `sequence_number` (keepalive
and unknown events consume numbers too, §8.4) and stops early for `drop_after`. A
`Framing` says which payloads end a stream and what keepalive and unknown payloads look
like (Responses events by default; Chat Completions chunks pass their own).

`emit` may buffer (one socket write per event costs more than building the event, which
made long answers slow): the transport then passes a `flush` coroutine too, and the pump
flushes before every pause (time to first token, token delay, keepalive wait) and at the
end, so what a client sees, and when, is what it would see without buffering.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from llmkit.testing._events import TERMINAL_TYPES, Event
from llmkit.testing._sse import SseBlock

Payload = Event | SseBlock
Emit = Callable[[Payload], Awaitable[None]]
Flush = Callable[[], Awaitable[None]]
_LIFECYCLE_START = ("response.created", "response.in_progress", "response.queued")


def first_token_delay(ttft: float, cost_per_input_token: float, uncached_tokens: int) -> float:
    """Seconds before a response's first output: the fixed `ttft` plus the prefill.

    The prefill is `cost_per_input_token` for every input token the model must process,
    that is every token not covered by a response the connection holds in memory
    (`_engine.Engine.produce` counts them). It makes chaining save time, not only bytes.
    """
    return ttft + cost_per_input_token * max(0, uncached_tokens)


@dataclass(frozen=True, slots=True)
class StreamConfig:
    """Timing and stream faults for one response."""

    ttft: float = 0.0
    token_delay: float = 0.0
    keepalive_interval: float | None = None
    unknown_events: bool = False
    drop_after: int | None = None


def _unknown_event() -> Payload:
    extra = {"note": "an event type this client does not know"}
    return {"type": "response.future_thing", "sequence_number": 0, "detail": extra}


def _keepalive_event() -> Payload:
    return {"type": "keepalive", "sequence_number": 0}


@dataclass(frozen=True, slots=True)
class Framing:
    """The stream dialect: terminal payload kinds and the filler payloads to interleave.

    A payload of a `terminal` kind commits the response before it is sent and is never
    followed by an unknown payload.
    """

    terminal: frozenset[str] = field(default=TERMINAL_TYPES)
    unknown: Callable[[], Payload] = field(default=_unknown_event)
    keepalive: Callable[[], Payload] = field(default=_keepalive_event)


RESPONSES_FRAMING = Framing()


class _Dropped(Exception):
    pass


def _kind(payload: Payload) -> str:
    if isinstance(payload, SseBlock):
        return payload.type or ""
    return str(payload.get("type", ""))


class Pump:
    """Writes one response's events through `emit`, honouring a `StreamConfig`."""

    def __init__(
        self,
        emit: Emit,
        config: StreamConfig,
        before_terminal: Callable[[], object] | None = None,
        framing: Framing = RESPONSES_FRAMING,
        flush: Flush | None = None,
    ) -> None:
        self._emit = emit
        self._flush = flush
        self._config = config
        self._framing = framing
        self._before_terminal = before_terminal
        self._loop = asyncio.get_running_loop()
        self._last = self._loop.time()
        self.sent = 0
        self._seq = 0

    async def run(self, payloads: Iterable[Payload]) -> bool:
        """Send everything; False if the stream was cut by `drop_after`."""
        started = False
        try:
            for payload in payloads:
                kind = _kind(payload)
                if not started and kind not in _LIFECYCLE_START:
                    started = True
                    await self._wait(self._config.ttft)
                elif kind.endswith(".delta"):
                    await self._wait(self._config.token_delay)
                await self._send(payload)
                if self._config.unknown_events and kind not in self._framing.terminal:
                    await self._send(self._framing.unknown())
        except _Dropped:
            await self.flush()
            return False
        await self.flush()
        return True

    async def flush(self) -> None:
        """Write out what `emit` buffered (a no-op for an unbuffered `emit`)."""
        if self._flush is not None:
            await self._flush()

    def commit(self) -> None:
        """Run the `before_terminal` hook once (also for streams without a terminal event)."""
        hook, self._before_terminal = self._before_terminal, None
        if hook is not None:
            hook()

    async def _send(self, payload: Payload) -> None:
        limit = self._config.drop_after
        if limit is not None and self.sent >= limit:
            raise _Dropped
        if _kind(payload) in self._framing.terminal:
            # Commit (cache head, store, "not busy") before the client can see the end of
            # the response and send its next request.
            self.commit()
        if not isinstance(payload, SseBlock):
            payload = dict(payload)
            payload["sequence_number"] = self._seq
            self._seq += 1
        await self._emit(payload)
        self.sent += 1
        self._last = self._loop.time()

    async def _wait(self, seconds: float) -> None:
        """Sleep, sending `keepalive` events whenever the stream would go quiet too long."""
        interval = self._config.keepalive_interval
        if seconds <= 0 and (interval is None or interval <= 0):
            return  # the common case (no delay configured): no clock reads per event
        end = self._loop.time() + max(0.0, seconds)
        while True:
            now = self._loop.time()
            if interval is not None and interval > 0 and self._last + interval < end:
                await self.flush()
                await asyncio.sleep(max(0.0, self._last + interval - now))
                await self._send(self._framing.keepalive())
                continue
            if end > now:
                await self.flush()
                await asyncio.sleep(end - now)
            return
