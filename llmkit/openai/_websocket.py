"""Responses WebSocket mode: connections, chains, recovery and fallback.

The I/O shell around three pure pieces: `plan_request` (what to send, ``_chain``),
`decide` (what a failure means, ``_recovery``) and `ResponsesProtocol` (what the frames
say). Decisions are made there; this module opens, leases and closes connections.

Rules kept here, each one a bug of the Go original (PEERS.md (b)):

* One response in flight per connection: a connection is leased for one turn and the
  lease is released in ``finally``, also when a stream is abandoned. The lease is taken
  only when iteration starts, so a stream that is never iterated holds nothing.
* A connection whose response did not complete on it (an error frame, a drop, a
  timeout, an abandoned or cancelled stream) is closed, never reused.
* Chains live on connections and are matched to conversations by content: a call goes
  to the idle connection whose chain it extends, so interleaved conversations each keep
  their cache and never see each other's context.
* A chain exists only after ``completed``/``incomplete`` on that connection.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Generator, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from llmkit.exceptions import LLMKitError, Timeout, TransportError
from llmkit.messages import WarmupResult
from llmkit.openai._chain import Chain, Plan, chain_extends, plan_request, record_chain
from llmkit.openai._encode import render_output
from llmkit.openai._loop import Meter, run_protocol
from llmkit.openai._recovery import Action, Cooldown, Failure, decide, fallback_reason
from llmkit.openai.protocol import ResponsesProtocol
from llmkit.stream import Finish, StreamPart
from llmkit.transports.base import PayloadStream, json_text

__all__ = ["Connection", "FramePayloads", "WebSocketSession"]

logger = logging.getLogger("llmkit")

JSON = dict[str, Any]
HTTPTurn = Callable[[JSON, str], Iterator[StreamPart]]


class Connection(Protocol):
    """What the session needs of a connection (`WebSocketConnection` in production)."""

    @property
    def age(self) -> float: ...

    def send_text(self, text: str) -> int: ...

    def probe(self) -> bool: ...

    def close(self) -> None: ...


class FramePayloads(PayloadStream, Protocol):
    """A payload stream that counts the frames it received."""

    received: int


@dataclass(eq=False, slots=True)
class _Slot:
    """One pooled connection and what its server-side cache holds."""

    number: int
    connection: Connection | None = None
    chain: Chain | None = None
    head_id: str | None = None
    busy: bool = False
    last_used: float = 0.0

    def drop(self, reason: str) -> None:
        """Close the connection and forget its cache (fail closed)."""
        if self.connection is not None:
            logger.debug("closing WebSocket connection %d: %s", self.number, reason)
            self.connection.close()
        if self.chain is not None:
            logger.debug("chain reset on WebSocket connection %d: %s", self.number, reason)
        self.connection = None
        self.chain = None
        self.head_id = None


class _Pool:
    """Up to ``size`` connections; a call leases the one whose chain it extends."""

    def __init__(self, size: int, wait_timeout: float | None) -> None:
        self._size = size
        self._wait_timeout = wait_timeout
        self._slots: list[_Slot] = []
        self._cond = threading.Condition()

    def acquire(self, body: Mapping[str, Any]) -> _Slot:
        """Lease a slot for ``body``; waits for one to free up, at most ``wait_timeout``."""
        deadline = None if self._wait_timeout is None else time.monotonic() + self._wait_timeout
        with self._cond:
            while (slot := self._pick(body)) is None:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise Timeout(
                        f"all {self._size} WebSocket connections stayed busy "
                        f"for {self._wait_timeout} seconds"
                    )
                self._cond.wait(remaining)
            slot.busy = True
            return slot

    def _pick(self, body: Mapping[str, Any]) -> _Slot | None:
        idle = [slot for slot in self._slots if not slot.busy]
        chained = [s for s in idle if s.chain is not None and chain_extends(body, s.chain)]
        if chained:  # the longest matching chain is this conversation's latest turn
            return max(chained, key=lambda s: len(s.chain.context) if s.chain else 0)
        explicit = body.get("previous_response_id")
        for slot in idle:
            if explicit is not None and slot.head_id == explicit:
                return slot
        if len(self._slots) < self._size:
            self._slots.append(_Slot(len(self._slots)))
            return self._slots[-1]
        return min(idle, key=lambda s: s.last_used) if idle else None

    def release(self, slot: _Slot) -> None:
        """Return a leased slot."""
        with self._cond:
            slot.busy = False
            slot.last_used = time.monotonic()
            self._cond.notify()

    def close(self) -> None:
        """Close every connection; leased ones fail on their next read."""
        with self._cond:
            for slot in self._slots:
                slot.drop("the provider was closed")
            self._cond.notify_all()


@dataclass(slots=True)
class _Progress:
    """How far one attempt got, for classifying its failure."""

    stage: Literal["send", "receive"] = "send"
    payloads: FramePayloads | None = None

    def failure(self, error: LLMKitError) -> Failure:
        received = self.payloads.received if self.payloads is not None else 0
        # An error event is itself the frame that failed; a transport error came after
        # the frames received so far.
        before = received if isinstance(error, TransportError) else received - 1
        return Failure(self.stage, error, events=max(before, 0))


class WebSocketSession:
    """All WebSocket state of one provider: the pool, its chains and the cool-down.

    Args:
        connect: Opens a new connection (raises `ConnectError`, `Timeout` or an
            `APIStatusError` for a refused upgrade).
        payloads: Makes the payload stream of one response on a connection, given the
            size of the frame sent.
        max_connections: Pool size; calls beyond it wait for a free connection.
        max_age: Seconds after which a connection is replaced before sending.
        wait_timeout: Longest wait for a free connection.
        cooldown: When to try WebSocket again after a failed connect.
    """

    def __init__(
        self,
        *,
        connect: Callable[[], Connection],
        payloads: Callable[[Connection, int], FramePayloads],
        max_connections: int,
        max_age: float,
        wait_timeout: float | None,
        cooldown: Cooldown,
    ) -> None:
        self._connect = connect
        self._payloads = payloads
        self._pool = _Pool(max_connections, wait_timeout)
        self._max_age = max_age
        self._cooldown = cooldown
        self._cooldown_lock = threading.Lock()

    def stream(self, body: JSON, http: HTTPTurn) -> Iterator[StreamPart]:
        """Serve one turn over WebSocket, or over ``http`` when it provably never started."""
        if self._cooling_down():
            yield from http(body, "WebSocket is cooling down after a failed connect")
            return
        slot = self._pool.acquire(body)
        try:
            failure = yield from self._attempts(slot, body, warmup=False)
        finally:
            self._pool.release(slot)
        if failure is not None:
            reason = fallback_reason(failure)
            logger.debug("falling back to HTTP for one turn: %s", reason)
            yield from http(body, reason)

    def warmup(self, body: JSON) -> WarmupResult:
        """Send ``body`` with ``generate: false``; its response becomes the chain head.

        Never over HTTP: when WebSocket is unavailable this is a no-op (``transport`` is
        ``"http"`` and ``response_id`` None), not a billed generation.
        """
        noop = WarmupResult.skipped()
        if self._cooling_down():
            return noop
        slot = self._pool.acquire(body)
        failures: list[Failure | None] = []

        def attempts() -> Iterator[StreamPart]:
            failures.append((yield from self._attempts(slot, body, warmup=True)))

        try:
            finishes = [part for part in attempts() if isinstance(part, Finish)]
        finally:
            self._pool.release(slot)
        if failures != [None] or not finishes:
            return noop  # the request never reached the model: nothing was billed
        return WarmupResult(
            response_id=finishes[-1].metadata.response_id,
            usage=finishes[-1].usage,
            transport="websocket",
        )

    def close(self) -> None:
        """Close every connection."""
        self._pool.close()

    # ----------------------------------------------------------------- attempts

    def _cooling_down(self) -> bool:
        with self._cooldown_lock:
            return self._cooldown.active(time.monotonic())

    def _attempts(
        self, slot: _Slot, body: JSON, *, warmup: bool
    ) -> Generator[StreamPart, None, Failure | None]:
        """Run the turn on ``slot``, resending at most once and only before any event.

        Returns the failure when the request never reached the model and the turn
        should go over HTTP instead (a warm-up then becomes a no-op), else None.
        """
        resends_left = 1
        while True:
            reused = self._usable(slot)
            if not reused:
                failure = self._open(slot)
                if failure is not None:
                    return failure
            plan = plan_request(body, slot.chain, warmup=warmup)
            progress = _Progress()
            try:
                yield from self._attempt(slot, body, plan, reused, progress)
                return None
            except LLMKitError as exc:
                failure = progress.failure(exc)
                action = decide(failure, resends_left=resends_left)
                if action is Action.RAISE:
                    raise
                if action is Action.FALLBACK_HTTP:
                    return failure
                logger.debug("resending with full input after: %s", exc.message)
                resends_left -= 1

    def _usable(self, slot: _Slot) -> bool:
        """Whether the slot's connection can be reused as it is; drops it if not."""
        connection = slot.connection
        if connection is None:
            return False
        if connection.age > self._max_age:
            slot.drop(f"connection older than {self._max_age} seconds")
            return False
        if not connection.probe():
            slot.drop("connection found closed before sending")
            return False
        return True

    def _open(self, slot: _Slot) -> Failure | None:
        try:
            slot.connection = self._connect()
        except LLMKitError as exc:
            failure = Failure("connect", exc)
            if decide(failure, resends_left=0) is not Action.FALLBACK_HTTP:
                raise
            with self._cooldown_lock:
                wait = self._cooldown.failed(time.monotonic())
            logger.debug("WebSocket connect failed (%s); HTTP for %.1f s", exc.message, wait)
            return failure
        with self._cooldown_lock:
            self._cooldown.succeeded()
        logger.debug("opened WebSocket connection %d", slot.number)
        return None

    def _attempt(
        self, slot: _Slot, body: JSON, plan: Plan, reused: bool, progress: _Progress
    ) -> Generator[StreamPart, None, None]:
        connection = slot.connection
        assert connection is not None
        text = json_text(plan.frame)
        size = connection.send_text(text)
        progress.stage = "receive"
        progress.payloads = payloads = self._payloads(connection, size)
        meter = Meter("websocket", plan.mode, plan.items_sent, connection_reused=reused)
        protocol = ResponsesProtocol()
        completed = False
        try:
            # run_protocol returns only after completed/incomplete; anything else raises.
            yield from run_protocol(payloads, meter, protocol)
            completed = True
        finally:
            if completed:
                response = protocol.partial()
                slot.head_id = response.id
                store = bool(body.get("store", False))
                output = render_output(response.message, store=store)
                slot.chain = record_chain(body, plan, response.id, output)
            else:
                slot.drop("the response did not complete on this connection")
