"""The decisions of Responses WebSocket mode, shared by the sync and the async session.

No sockets and no waiting here: which pooled connection a call gets (`Slots`), whether a
connection may be reused, what to send (``_chain``), what a failure means
(``_recovery``), what the connection's cache holds afterwards, and when WebSocket is
cooling down. The shells, `llmkit.openai._websocket` (threads, websocket-client) and
`llmkit.openai._async_websocket` (asyncio, websockets), do the I/O between these steps,
so both keep the same rules (each one a bug of the Go original, PEERS.md (b)):

* One response in flight per connection: a slot is leased for one turn and released
  by the shell in ``finally``.
* A connection whose response did not complete on it is closed, never reused.
* Chains live on connections and are matched to conversations by content: a call goes
  to the idle connection whose chain it extends.
* A chain exists only after ``completed``/``incomplete`` on that connection, and after a
  warm-up only if it prepared something (``_chain.warmup_prepared``).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

from llmkit._closing import closed_error
from llmkit._core.run import Meter
from llmkit._deadline import Deadline
from llmkit.exceptions import ConnectionClosed, LLMKitError, Timeout, TransportError
from llmkit.messages import WarmupResult
from llmkit.openai._chain import (
    Chain,
    Continuation,
    Plan,
    continuation,
    plan_request,
    record_chain,
    warmup_prepared,
)
from llmkit.openai._encode import render_output
from llmkit.openai._recovery import (
    Action,
    Cooldown,
    Failure,
    decide,
    fallback_reason,
    not_served,
    silent_close,
)
from llmkit.openai.protocol import ResponsesProtocol
from llmkit.stream import Collector, Finish
from llmkit.transports.base import ConnectionBase, FrameCount, json_text

__all__ = ["COOLING_DOWN", "Attempt", "CooldownGate", "Slot", "Slots", "Turn"]

logger = logging.getLogger("llmkit")

JSON = dict[str, Any]
COOLING_DOWN = "WebSocket is cooling down after a failed connect"
UNPREPARED_WARMUP = (
    "a WebSocket warm-up prepared nothing: the server reported 0 input tokens for a "
    "non-empty input (a gateway, such as LiteLLM's WebSocket relay, answering warm-ups "
    "itself?); no chain is kept, so the next call sends its full input, and warm-ups "
    "bring no speed-up through this server"
)


ConnectionT = TypeVar("ConnectionT", bound=ConnectionBase)
FramesT = TypeVar("FramesT", bound=FrameCount)


@dataclass(eq=False, slots=True)
class Slot(Generic[ConnectionT]):
    """One pooled connection and what its server-side cache holds."""

    number: int
    connection: ConnectionT | None = None
    chain: Chain | None = None
    head_id: str | None = None
    busy: bool = False
    last_used: float = 0.0
    continuation: Continuation | None = None
    """How the leased turn's request continues ``chain``, as `Slots.lease` found it
    (None: it does not); forgotten with the chain."""

    def drop(self, reason: str) -> None:
        """Close the connection and forget its cache (fail closed)."""
        if self.connection is not None:
            logger.debug("closing WebSocket connection %d: %s", self.number, reason)
            self.connection.close()
        self.connection = None
        self.forget_chain(reason)

    def forget_chain(self, reason: str) -> None:
        """Forget what the cache holds, keeping the connection."""
        if self.chain is not None:
            logger.debug("chain reset on WebSocket connection %d: %s", self.number, reason)
        self.chain = None
        self.head_id = None
        self.continuation = None


class Slots(Generic[ConnectionT]):
    """Up to ``size`` slots; a call leases the one whose chain it extends.

    Not thread-safe by itself: each shell calls it under its own lock and brings its
    own way of waiting for `release`.

    Once `close` ran, nothing is leased or kept: `lease` and `admit` refuse with the
    provider's "closed" error, and `release` drops the connection of a turn that was
    in flight during the close (a connect that completed after it included).
    """

    def __init__(self, size: int, wait_timeout: float | None) -> None:
        self.size = size
        self.wait_timeout = wait_timeout
        self._slots: list[Slot[ConnectionT]] = []
        self.closed = False

    def __iter__(self) -> Iterator[Slot[ConnectionT]]:
        return iter(self._slots)

    def lease(self, body: Mapping[str, Any]) -> Slot[ConnectionT] | None:
        """The slot for ``body``, marked busy; None while every slot is busy.

        Raises:
            UsageError: the session is closed.
        """
        self.refuse_if_closed()
        slot, continued = self._pick(body)
        if slot is not None:
            slot.busy = True
            slot.continuation = continued  # the plan reuses it: the suffix is found once
        return slot

    def _pick(
        self, body: Mapping[str, Any]
    ) -> tuple[Slot[ConnectionT] | None, Continuation | None]:
        idle = [slot for slot in self._slots if not slot.busy]
        chained = [
            (found, s)
            for s in idle
            if s.chain is not None and (found := continuation(body, s.chain)) is not None
        ]
        if chained:  # the longest matching chain is this conversation's latest turn
            found, slot = max(chained, key=lambda pair: len(pair[0].chain.context))
            return slot, found
        explicit = body.get("previous_response_id")
        for slot in idle:
            if explicit is not None and slot.head_id == explicit:
                return slot, None
        if len(self._slots) < self.size:
            self._slots.append(Slot(len(self._slots)))
            return self._slots[-1], None
        return (min(idle, key=lambda s: s.last_used) if idle else None), None

    def release(self, slot: Slot[ConnectionT]) -> None:
        """Return a leased slot (its connection closed if the session closed meanwhile)."""
        slot.busy = False
        slot.last_used = time.monotonic()
        if self.closed:
            slot.drop("the provider was closed")

    def refuse_if_closed(self) -> None:
        """Raise the provider's "closed" `UsageError` once `close` ran."""
        if self.closed:
            raise closed_error()

    def admit(self, slot: Slot[ConnectionT], connection: ConnectionT) -> None:
        """Keep a newly opened ``connection`` in ``slot``, unless the session closed
        while it was connecting: then close it and raise the "closed" `UsageError`."""
        if self.closed:
            connection.close()
            raise closed_error()
        slot.connection = connection

    def close(self) -> None:
        """Close every connection and refuse what comes; leased ones fail on their next
        read, and their slots are emptied again when released."""
        self.closed = True
        for slot in self._slots:
            slot.drop("the provider was closed")

    def busy_error(self) -> Timeout:
        """What a call that waited ``wait_timeout`` for a free slot raises."""
        return Timeout(
            f"all {self.size} WebSocket connections stayed busy for {self.wait_timeout} seconds"
        )


class CooldownGate:
    """The `Cooldown` of a session, safe to share between threads."""

    def __init__(self, cooldown: Cooldown) -> None:
        self._cooldown = cooldown
        self._lock = threading.Lock()
        self._cause = ""
        self._warned: set[str] = set()

    def active(self) -> bool:
        """Whether WebSocket should not be tried now."""
        with self._lock:
            return self._cooldown.active(time.monotonic())

    def failed(self, cause: str) -> float:
        """Record a failed connect (``cause``: why, key-free); returns the seconds of
        HTTP ahead."""
        with self._lock:
            self._cause = cause
            return self._cooldown.failed(time.monotonic())

    @property
    def reason(self) -> str:
        """The ``fallback_reason`` of a call sent over HTTP by the cool-down: it names
        the cause of the failed connect, as the call that met it did."""
        cause = self._cause
        return f"{COOLING_DOWN} ({cause})" if cause else COOLING_DOWN

    def succeeded(self) -> None:
        """Record a successful connect."""
        with self._lock:
            self._cooldown.succeeded()

    def warn_once(self, message: str) -> None:
        """Log ``message`` as a warning the first time this session meets it (the gate is
        the state every turn of a provider's session shares)."""
        with self._lock:
            if message in self._warned:
                return
            self._warned.add(message)
        logger.warning("%s", message)


@dataclass(slots=True)
class Attempt:
    """One send of a turn on a connection: what goes out, and how far it got."""

    plan: Plan
    text: str
    meter: Meter
    protocol: ResponsesProtocol  # folds into the call's collector
    stage: Literal["send", "receive"] = "send"
    payloads: FrameCount | None = None

    def sent(self, payloads: FramesT) -> FramesT:
        """The frame went out; ``payloads`` will receive the response."""
        self.stage = "receive"
        self.payloads = payloads
        return payloads

    def failure(self, error: LLMKitError) -> Failure:
        """Classify ``error`` by how far this attempt got."""
        received = self.payloads.received if self.payloads is not None else 0
        # An error event is itself the frame that failed; a transport error came after
        # the frames received so far.
        before = received if isinstance(error, TransportError) else received - 1
        return Failure(self.stage, error, events=max(before, 0))


class Turn(Generic[ConnectionT]):
    """The decisions of one turn on a leased slot, in the order the shell meets them.

    A shell's loop, until `over`: `reusable` (and a liveness probe, confirmed with
    `alive`), or a new connection (`connect_failed` when that fails); then, inside
    ``with turn.attempt(...)``, send and stream. When the turn must go over HTTP
    instead, `failure` is set and `fallback_reason` says why.

    A failed attempt closes its connection, except after ``previous_response_not_found``
    (`Action.RESEND_FULL`): that error is about the request and the socket is healthy,
    so only the chain is forgotten and the resend goes out on the same connection.
    """

    def __init__(
        self,
        slot: Slot[ConnectionT],
        body: JSON,
        *,
        warmup: bool,
        max_age: float,
        gate: CooldownGate,
        collector: Collector | None = None,
    ) -> None:
        self.slot = slot
        self.collector = Collector() if collector is None else collector
        """The call's `Collector`: every attempt's protocol folds into it."""
        self.body = body
        self.warmup = warmup
        self._max_age = max_age
        self._gate = gate
        self._resends_left = 1
        self._silent_closes = 0
        self.prepared = False
        """Whether the turn left a chain head on its connection (a warm-up: `_record`)."""
        self.failure: Failure | None = None
        self.over = False
        """Whether the turn is done on WebSocket: completed, or going over HTTP."""

    def reusable(self) -> ConnectionT | None:
        """The slot's connection if it is young enough to reuse (a probe still due)."""
        connection = self.slot.connection
        if connection is not None and connection.age > self._max_age:
            self.slot.drop(f"connection older than {self._max_age} seconds")
            return None
        return connection

    def alive(self, probed: bool) -> bool:
        """Take the probe's answer; a dead connection is dropped."""
        if not probed:
            self.slot.drop("connection found closed before sending")
        return probed

    def connect_failed(self, exc: LLMKitError, deadline: Deadline | None = None) -> bool:
        """Whether a failed connect sends this turn over HTTP (else the shell raises).

        Raises:
            Timeout: the call's ``deadline`` ran out (`Deadline.error`): that cut the
                connect short, so WebSocket is not to blame and there is no time for HTTP.
        """
        if deadline is not None and deadline.expired():
            raise deadline.error() from exc
        failure = Failure("connect", exc)
        if decide(failure, resends_left=0) is not Action.FALLBACK_HTTP:
            return False
        wait = self._gate.failed(f"{type(exc).__name__}: {exc.message}")
        logger.debug("WebSocket connect failed (%s); HTTP for %.1f s", exc.message, wait)
        self.failure = failure
        self.over = True
        return True

    @contextlib.contextmanager
    def attempt(self, connection: ConnectionT, *, reused: bool) -> Iterator[Attempt]:
        """One send of the turn on ``connection`` (new, unless ``reused``).

        The shell sends `Attempt.text` and streams the response inside the block. On
        the way out the connection's cache is settled (the chain recorded after a
        completed response, else the connection dropped), and an error is recovered
        from: `decide` says whether it is raised, or swallowed to send the turn again
        (at most once, before any event) or to fall back to HTTP (`failure` is set).
        Either way `over` says whether the shell's loop is done.

        The one failure that keeps the connection is ``previous_response_not_found``
        (`Action.RESEND_FULL`): an error about this request, not the socket (PROTOCOL.md
        §3.1, "Recovery after a miss"), after which the server is idle again. The chain
        is forgotten and the shell's next attempt reuses the connection (probed first)
        to send the full input. An abandoned or cancelled stream, and every other
        error, close it.
        """
        if not reused:
            self.slot.connection = connection
            self._gate.succeeded()
            logger.debug("opened WebSocket connection %d", self.slot.number)
        plan = plan_request(self.body, self.slot.continuation, warmup=self.warmup)
        meter = Meter("websocket", plan.mode, plan.items_sent, connection_reused=reused)
        protocol = ResponsesProtocol(self.collector)
        attempt = Attempt(plan, json_text(plan.frame), meter, protocol)
        try:
            yield attempt
        except LLMKitError as exc:
            error = self._recover(attempt, exc)
            if error is exc:
                raise
            if error is not None:
                raise error from exc
        except BaseException:  # an abandoned or cancelled stream
            self.slot.drop("the response did not complete on this connection")
            raise
        else:
            self._record(attempt)
            self.over = True

    def _record(self, attempt: Attempt) -> None:
        """Keep the completed response as the connection's chain head, unless it is a
        warm-up that prepared nothing (`warmup_prepared`): then the connection stays,
        its chain is forgotten, and the session warns once."""
        response = attempt.protocol.partial()  # the call's collector, with this attempt's ids
        if self.warmup and not warmup_prepared(self.body, response.usage.input_tokens):
            self.slot.forget_chain("the warm-up prepared nothing")
            self._gate.warn_once(UNPREPARED_WARMUP)
            return
        self.prepared = True
        self.slot.head_id = response.id
        output = render_output(response.message, store=bool(self.body.get("store", False)))
        self.slot.chain = record_chain(self.body, attempt.plan, response.id, output)

    def _recover(self, attempt: Attempt, exc: LLMKitError) -> LLMKitError | None:
        """Settle the slot after ``exc``; the error to raise (``exc``, or what it means),
        or None when it is dealt with (resend, or HTTP instead).

        Only `Action.RESEND_FULL` keeps the connection: the server answered with a
        request-scoped error (``previous_response_not_found``) and is idle again, so the
        socket is healthy and only the chain it named is gone. Every other failure
        leaves the connection in an unknown state, and it is closed. A second clean
        close with no event (`silent_close`) raises `not_served`.
        """
        failure = attempt.failure(exc)
        action = decide(failure, resends_left=self._resends_left)
        if action is Action.RESEND_FULL:
            self.slot.forget_chain("the server no longer has the chain's head")
        else:
            self.slot.drop("the response did not complete on this connection")
        if silent_close(failure):
            self._silent_closes += 1
        if action is Action.RAISE:
            if self._silent_closes > 1 and isinstance(exc, ConnectionClosed):
                return not_served(exc)
            return exc
        if action is Action.FALLBACK_HTTP:
            self.failure = failure
            self.over = True
        else:
            where = "on the same connection" if action is Action.RESEND_FULL else "reconnecting"
            logger.debug("resending with full input (%s) after: %s", where, exc.message)
            self._resends_left -= 1
        return None

    def fallback_reason(self) -> str:
        """Why this turn went over HTTP (call only when `failure` is set)."""
        assert self.failure is not None
        reason = fallback_reason(self.failure)
        logger.debug("falling back to HTTP for one turn: %s", reason)
        return reason

    def warmup_result(self, finishes: list[Finish]) -> WarmupResult:
        """The result of a warm-up turn that yielded ``finishes``.

        A warm-up never goes over HTTP: when it could not reach the model it is a no-op
        (``transport="http"``, no response id), never a billed generation. One the server
        answered without preparing anything is ``prepared=False`` (`_record`).
        """
        if self.failure is not None or not finishes:
            return WarmupResult.skipped()
        return WarmupResult(
            response_id=finishes[-1].metadata.response_id,
            usage=finishes[-1].usage,
            transport="websocket",
            prepared=self.prepared,
        )
