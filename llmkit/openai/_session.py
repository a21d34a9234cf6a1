"""The decisions of Responses WebSocket mode, shared by the sync and the async session.

No sockets and no waiting here: where a call goes (`Lanes`, over `_lanes.LanePool`),
whether a pooled connection may be used, what a failure means (``_recovery``) and for
which lane or socket, and when WebSocket is cooling down. The shells,
`llmkit.openai._websocket` (threads, websocket-client) and
`llmkit.openai._async_websocket` (asyncio, websockets), do the I/O between these steps,
so both keep the same rules (each one a bug of the Go original, PEERS.md (b)):

* Each response has a lane to itself until it ends: a lane is placed for one turn and
  freed when its response ended (or, when abandoned, once its last frame arrived).
* A socket that failed, or carried a response that did not complete on a socket
  running one response at a time, is closed, never reused.
* Chains live on lanes and are matched to conversations by content: a call goes to the
  lane whose head it extends, or forks from it when that lane is busy.
* A chain exists only after ``completed``/``incomplete`` on that lane, and after a
  warm-up only if it prepared something (``_chain.warmup_prepared``).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

from llmkit._closing import closed_error
from llmkit._core.protocol import State
from llmkit._core.run import Meter
from llmkit._deadline import Deadline
from llmkit.exceptions import APIError, ConnectionClosed, LLMKitError, Timeout, TransportError
from llmkit.messages import Response, WarmupResult
from llmkit.openai._chain import Plan, warmup_prepared
from llmkit.openai._lanes import LanePool, Placement, Verdict, Wait, event_facts, is_terminal
from llmkit.openai._recovery import (
    Action,
    Cooldown,
    Failure,
    decide,
    fallback_reason,
    not_served,
    silent_close,
)
from llmkit.openai._steer import SteerControl
from llmkit.openai.protocol import ResponsesProtocol
from llmkit.stream import Collector, Finish
from llmkit.transports.base import ConnectionBase, FrameCount, LaneEnd, json_text

__all__ = ["COOLING_DOWN", "Attempt", "CooldownGate", "Lanes", "Turn", "Waiter"]

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


def _nothing() -> None:
    return None


class Waiter(Generic[ConnectionT]):
    """A call that found no room (`Lanes.place`): it waits to be handed a placement."""

    __slots__ = ("body", "full", "placement", "reason", "wake", "warmup")

    def __init__(self, body: Mapping[str, Any], *, warmup: bool, full: bool, reason: str) -> None:
        self.body = body
        self.warmup = warmup
        self.full = full
        self.reason = reason
        self.placement: Placement[ConnectionT] | None = None
        self.wake: Callable[[], None] = _nothing


_After = tuple[ConnectionBase | None, list[Callable[[], None]]]


def _call(wakes: list[Callable[[], None]]) -> None:
    for wake in wakes:
        wake()


def _finish(after: _After | None) -> None:
    """Close what `Lanes._settled` dropped and wake whom it placed, outside the lock."""
    if after is None:
        return
    closing, wakes = after
    if closing is not None:
        closing.close()
    _call(wakes)


class Lanes(Generic[ConnectionT]):
    """The sockets of a session (`LanePool`) behind a lock, and the calls waiting.

    Both shells use it: a thread or a task asks `place` for a (socket, lane) and gets
    one, or a `Waiter` it waits on (`arm`, then its own event) until `hand_over` gives
    it one, at most ``wait_timeout``. Whenever something frees room (a response ends,
    a lane is drained, a socket is dropped, a probe is answered), the waiters that gain
    most get placed first (affinity: a waiter whose chain a lane holds before a new
    conversation), so a freed socket goes to the call whose cache it holds, with
    threads and asyncio alike.

    Lock order: a reader may call in (`drained`) while holding its own lock; nothing
    here calls a connection under this lock (connections are closed after it).

    Once `close` ran, nothing is placed or kept: `place` and `connected` refuse with the
    provider's "closed" error, and waiters wake to it.
    """

    def __init__(self, max_connections: int, wait_timeout: float | None, *, lanes: bool) -> None:
        self.pool: LanePool[ConnectionT] = LanePool(max_connections, lanes=lanes)
        self.wait_timeout = wait_timeout
        self.closed = False
        self._lock = threading.Lock()
        self._waiters: list[Waiter[ConnectionT]] = []

    def connections(self) -> list[ConnectionT]:
        """The open connections (for tests and diagnostics)."""
        with self._lock:
            return [s.connection for s in self.pool.sockets if s.connection is not None]

    # -- placing ---------------------------------------------------------------------

    def place(
        self, body: Mapping[str, Any], *, warmup: bool, full: bool
    ) -> Placement[ConnectionT] | Waiter[ConnectionT]:
        """A placement for ``body``, or the `Waiter` to wait on.

        Raises:
            UsageError: the session is closed.
        """
        with self._lock:
            self.refuse_if_closed()
            found = self.pool.place(body, warmup=warmup, full=full)
            if isinstance(found, Wait):
                waiter: Waiter[ConnectionT] = Waiter(
                    body, warmup=warmup, full=full, reason=found.reason
                )
                self._waiters.append(waiter)
                return waiter
            return found

    def arm(self, waiter: Waiter[ConnectionT], wake: Callable[[], None]) -> bool:
        """Call ``wake`` when ``waiter`` is placed; False if it was placed already."""
        with self._lock:
            if waiter.placement is not None or self.closed:
                return False
            waiter.wake = wake
            return True

    def withdraw(self, waiter: Waiter[ConnectionT]) -> Placement[ConnectionT] | None:
        """``waiter`` stops waiting; the placement it got meanwhile, if any (to use or
        `cancel`)."""
        with self._lock:
            if waiter in self._waiters:
                self._waiters.remove(waiter)
            return waiter.placement

    def waited(
        self, waiter: Waiter[ConnectionT], deadline: Deadline | None
    ) -> Placement[ConnectionT]:
        """The end of ``waiter``'s wait: the placement it was handed, else the error
        that ended it (the session closed, the call's deadline, or no room in time)."""
        placement = self.withdraw(waiter)
        if placement is not None:
            return placement
        self.refuse_if_closed()
        if deadline is not None and deadline.expired():
            raise deadline.error()
        raise self.busy_error(waiter)

    def give_up(self, waiter: Waiter[ConnectionT]) -> None:
        """``waiter`` was interrupted (cancelled, the deadline ran out mid-wait): it stops
        waiting, and a placement it was handed meanwhile goes to someone else."""
        given = self.withdraw(waiter)
        if given is not None:
            self.cancel(given)

    def busy_error(self, waiter: Waiter[ConnectionT]) -> Timeout:
        """What a call that waited ``wait_timeout`` for room raises."""
        return Timeout(
            f"all {self.pool.max_connections} WebSocket connections stayed busy for "
            f"{self.wait_timeout} seconds ({waiter.reason})"
        )

    def refuse_if_closed(self) -> None:
        """Raise the provider's "closed" `UsageError` once `close` ran."""
        if self.closed:
            raise closed_error()

    # -- what happened ---------------------------------------------------------------

    def connected(self, placement: Placement[ConnectionT], connection: ConnectionT) -> None:
        """The new socket of ``placement`` is open; refused (and closed) once closed."""
        with self._lock:
            closed = self.closed
            if not closed:
                self.pool.connected(placement.socket, connection)
        if closed:
            connection.close()
            raise closed_error()

    def answered(self, placement: Placement[ConnectionT], stream_id: str | None) -> None:
        """The first event of ``placement``'s response carried ``stream_id``."""
        with self._lock:
            self.pool.answered(placement, stream_id)
            wakes = self._hand_over()
        _call(wakes)

    def completed(
        self,
        placement: Placement[ConnectionT],
        response: Response,
        *,
        keep: bool,
        parked: bool = False,
    ) -> None:
        """The response ended; its lane's head is it (``keep``), else holds nothing.
        ``parked``: the server keeps steer input for the head's next create on this lane
        (`LanePool.completed`)."""
        with self._lock:
            self.pool.completed(placement, response.id, response.messages, parked=parked)
            if not keep:
                placement.lane.forget()
            after = self._settled(placement)
        _finish(after)

    def failed(
        self, placement: Placement[ConnectionT], error: APIError, *, before_output: bool
    ) -> Verdict:
        """A request-scoped error ended the response (`LanePool.failed`)."""
        with self._lock:
            if placement.lane.chain is not None:
                lane = placement.stream_id  # None: the default lane, the socket's only one
                where = "" if lane is None else f"lane {lane} of "
                logger.debug(
                    "chain reset on %sWebSocket connection %d: %s",
                    where, placement.socket.number, error.message,
                )  # fmt: skip
            verdict = self.pool.failed(
                placement, error.code, error.param, before_output=before_output,
                message=error.message,
            )  # fmt: skip
            after = self._settled(placement)  # a refusal too: it answered the probe
        _finish(after)
        return verdict

    def abandoned(self, placement: Placement[ConnectionT]) -> None:
        """Its caller gave up on the response; its lane is busy until `drained`."""
        with self._lock:
            self.pool.abandoned(placement)

    def drained(self, placement: Placement[ConnectionT]) -> None:
        """An abandoned response's last frame arrived (called by the reader)."""
        with self._lock:
            self.pool.drained(placement)
            after = self._settled(placement)
        _finish(after)

    def cancel(self, placement: Placement[ConnectionT]) -> None:
        """``placement`` was never sent: its room goes to someone else."""
        with self._lock:
            self.pool.cancel(placement)
            after = self._settled(placement)
        _finish(after)

    def retire(self, placement: Placement[ConnectionT], reason: str) -> None:
        """Send nothing more on ``placement``'s socket; close it once idle."""
        logger.debug("retiring WebSocket connection %d: %s", placement.socket.number, reason)
        with self._lock:
            self.pool.retire(placement.socket)
            after = self._settled(placement)
        _finish(after)

    def drop(self, placement: Placement[ConnectionT], reason: str) -> None:
        """Close ``placement``'s socket and forget every chain of it (fail closed)."""
        socket = placement.socket
        logger.debug("closing WebSocket connection %d: %s", socket.number, reason)
        with self._lock:
            if any(lane.chain is not None for lane in socket.lanes.values()):
                logger.debug("chain reset on WebSocket connection %d: %s", socket.number, reason)
            self.pool.drop(socket)
            wakes = self._hand_over()
        if socket.connection is not None:
            socket.connection.close()
        _call(wakes)

    def close(self) -> None:
        """Close every connection; waiting and later calls are refused."""
        with self._lock:
            self.closed = True
            sockets = list(self.pool.sockets)
            for socket in sockets:
                self.pool.drop(socket)
            waiters, self._waiters = self._waiters, []
        for socket in sockets:
            if socket.connection is not None:
                socket.connection.close()
        _call([waiter.wake for waiter in waiters])

    def _settled(self, placement: Placement[ConnectionT]) -> _After:
        """Under the lock, after room was freed: a retired socket that went idle is
        dropped, and the waiters that can go now are placed; `_finish` (after the
        lock) closes that socket and wakes them."""
        socket = placement.socket
        closing = None
        if socket.closable and socket in self.pool.sockets:
            logger.debug("closing WebSocket connection %d: retired and idle", socket.number)
            self.pool.drop(socket)
            closing = socket.connection
        return closing, self._hand_over()

    def _hand_over(self) -> list[Callable[[], None]]:
        wakes: list[Callable[[], None]] = []
        while self._waiters and not self.closed:
            found = self.pool.hand_over(
                [w.body for w in self._waiters],
                warmups=[w.warmup for w in self._waiters],
                fulls=[w.full for w in self._waiters],
            )
            if found is None:
                break
            index, placement = found
            waiter = self._waiters.pop(index)
            waiter.placement = placement
            wakes.append(waiter.wake)
        return wakes


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
class Attempt(Generic[ConnectionT]):
    """One send of a turn on a placement: what goes out, and how far it got."""

    placement: Placement[ConnectionT]
    text: str
    meter: Meter
    protocol: ResponsesProtocol  # folds into the call's collector
    stage: Literal["send", "receive"] = "send"
    payloads: FrameCount | None = None
    end: LaneEnd | None = None
    """How the connection tells this response's end (`Turn.attempt` sets it)."""

    @property
    def plan(self) -> Plan:
        return self.placement.plan

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


def _send_facts(placement: Placement[ConnectionT]) -> dict[str, str | int | bool]:
    """What a WebSocket send of a traced call notes: where it goes and what it sends."""
    facts: dict[str, str | int | bool] = {
        "llmkit.connection": placement.socket.number,
        "llmkit.connection_reused": not placement.connect,
        "llmkit.chain": placement.kind,
        "llmkit.input_mode": placement.plan.mode,
        "llmkit.items_sent": placement.plan.items_sent,
    }
    if placement.stream_id is not None:
        facts["llmkit.stream_id"] = placement.stream_id
    return facts


def _why(how: str, exc: LLMKitError) -> dict[str, str | int | bool]:
    return {"llmkit.resend": how, "error.type": type(exc).__name__, "llmkit.reason": exc.message}


class Turn(Generic[ConnectionT]):
    """The decisions of one turn, in the order the shell meets them.

    A shell's loop, until `over`: `place` (or wait on its `Waiter`); a new socket is
    opened (`connected`, or `connect_failed`), a pooled one checked (`reusable`, and
    a liveness probe confirmed with `alive` when the socket is otherwise idle); then,
    inside ``with turn.attempt(...)``, the lane's frames are registered for
    (``Connection.receive`` with `Attempt.end`), the frame sent and the response
    streamed. When the turn must go over HTTP instead, `failure` is set and
    `fallback_reason` says why.

    What a failure costs (PROTOCOL.md §6.2): an ``error`` frame or ``response.failed``
    of a lane ends that response and drops that lane's chain only, on a socket running
    lanes; a close, a drop, a timeout on a socket without lanes, an error about the
    whole socket, or any other failure on a socket running one response at a time
    closes the socket, failing every response on it. ``previous_response_not_found``
    keeps the socket and resends the full input (`Action.RESEND_FULL`); a refused
    ``stream_id`` resends the same request without a lane, a full socket moves it
    (both before any output, so nothing is generated twice). An abandoned or cancelled
    stream drains its lane on a socket with lanes (the other lanes go on) and closes
    the socket otherwise.
    """

    def __init__(
        self,
        lanes: Lanes[ConnectionT],
        body: JSON,
        *,
        warmup: bool,
        max_age: float,
        gate: CooldownGate,
        collector: Collector | None = None,
        steering: SteerControl | None = None,
    ) -> None:
        self.lanes = lanes
        self.steering = steering
        """The call's steering (`_steer`): its protocols follow steered responses."""
        self.collector = Collector() if collector is None else collector
        """The call's `Collector`: every attempt's protocol folds into it."""
        self.body = body
        self.warmup = warmup
        self._max_age = max_age
        self._gate = gate
        self._resends_left = 1
        self._silent_closes = 0
        self._full = False
        self._again: Placement[ConnectionT] | None = None
        self.prepared = False
        """Whether the turn left a chain head on its lane (a warm-up: `_record`)."""
        self.failure: Failure | None = None
        self.over = False
        """Whether the turn is done on WebSocket: completed, or going over HTTP."""

    def place(self) -> Placement[ConnectionT] | Waiter[ConnectionT]:
        """Where the next attempt goes, or the `Waiter` to wait on."""
        again, self._again = self._again, None
        if again is not None:
            return again
        return self.lanes.place(self.body, warmup=self.warmup, full=self._full)

    def reusable(self, placement: Placement[ConnectionT]) -> ConnectionT | None:
        """The pooled connection of ``placement`` if it is young enough (else the
        socket is retired and the shell places the turn again)."""
        connection = placement.socket.connection
        assert connection is not None  # a socket is placed on only once it is open
        if connection.age > self._max_age:  # retired first: the room freed is not its
            self.lanes.retire(placement, f"connection older than {self._max_age} seconds")
            self.lanes.cancel(placement)
            return None
        return connection

    @staticmethod
    def must_probe(placement: Placement[ConnectionT]) -> bool:
        """Whether the socket is idle but for this placement: then nobody reads it, and
        a probe looks at what arrived meanwhile before sending."""
        return placement.socket.in_flight == 1

    def alive(self, placement: Placement[ConnectionT], probed: bool) -> bool:
        """Take the probe's answer; a dead connection is dropped."""
        if not probed:
            self.lanes.drop(placement, "connection found closed before sending")
        return probed

    def connect_failed(
        self, placement: Placement[ConnectionT], exc: LLMKitError, deadline: Deadline | None = None
    ) -> bool:
        """Whether a failed connect sends this turn over HTTP (else the shell raises).

        Raises:
            Timeout: the call's ``deadline`` ran out (`Deadline.error`): that cut the
                connect short, so WebSocket is not to blame and there is no time for HTTP.
        """
        self.lanes.drop(placement, "the connect failed")
        if deadline is not None and deadline.expired():
            raise deadline.error() from exc
        failure = Failure("connect", exc)
        if decide(failure, resends_left=0) is not Action.FALLBACK_HTTP:
            return False
        wait = self._gate.failed(f"{type(exc).__name__}: {exc.message}")
        logger.debug("WebSocket connect failed (%s); HTTP for %.1f s", exc.message, wait)
        self._note("llmkit.websocket.connect_failed", {"error.type": type(exc).__name__})
        self.failure = failure
        self.over = True
        return True

    def connected(self, placement: Placement[ConnectionT], connection: ConnectionT) -> None:
        """A new connection for ``placement`` is open (refused once the session closed)."""
        self.lanes.connected(placement, connection)
        self._gate.succeeded()
        logger.debug("opened WebSocket connection %d", placement.socket.number)
        self._note("llmkit.websocket.connected", {"llmkit.connection": placement.socket.number})

    @contextlib.contextmanager
    def attempt(
        self, placement: Placement[ConnectionT], connection: ConnectionT
    ) -> Iterator[Attempt[ConnectionT]]:
        """One send of the turn by ``placement`` on ``connection``.

        The shell registers for the lane's frames (with `Attempt.end`), sends
        `Attempt.text` and streams the response inside the block. On the way out the
        lane is settled (the chain recorded after a completed response), and an error is
        recovered from: `decide` says whether it is raised, or swallowed to send the
        turn again (at most once, before any event) or to fall back to HTTP (`failure`
        is set). Either way `over` says whether the shell's loop is done.
        """
        plan = placement.plan
        meter = Meter(
            "websocket",
            plan.mode,
            plan.items_sent,
            connection_reused=not placement.connect,
            stream_id=placement.stream_id,
            previous_response_id=placement.previous_response_id,
        )
        protocol = ResponsesProtocol(self.collector)
        if self.collector.observer is not None:
            self._note("llmkit.websocket.send", _send_facts(placement))
        protocol.steering = self.steering
        attempt: Attempt[ConnectionT] = Attempt(
            placement, json_text(placement.frame), meter, protocol
        )
        attempt.end = self._end(attempt)
        try:
            yield attempt
        except LLMKitError as exc:
            error = self._recover(attempt, connection, exc)
            if error is exc:
                raise
            if error is not None:
                raise error from exc
        except BaseException:  # an abandoned or cancelled stream
            if attempt.stage == "receive" and self._lanes_socket(placement, connection):
                self.lanes.abandoned(placement)  # the lane drains; the others go on
            else:
                self.lanes.drop(placement, "the response did not complete on this connection")
            raise
        else:
            self._record(attempt)
            self.over = True

    def _end(self, attempt: Attempt[ConnectionT]) -> LaneEnd:
        placement, protocol, lanes = attempt.placement, attempt.protocol, self.lanes

        def answered(text: str) -> None:
            kind, stream_id = event_facts(text)
            if kind != "error":  # an error goes to `LanePool.failed`
                lanes.answered(placement, stream_id)
                attempt.meter.stream_id = placement.stream_id

        return LaneEnd(
            ended=lambda: protocol.state is State.DONE,
            is_end=is_terminal if self.steering is None else self.steering.drain_end,
            drained=lambda: lanes.drained(placement),
            answered=answered if placement.socket.capability == "unknown" else None,
        )

    @staticmethod
    def _lanes_socket(placement: Placement[ConnectionT], connection: ConnectionT) -> bool:
        return placement.socket.capability == "lanes" and connection.connected

    def _record(self, attempt: Attempt[ConnectionT]) -> None:
        """Keep the completed response as the lane's chain head, unless it is a warm-up
        that prepared nothing (`warmup_prepared`): then the lane's chain is forgotten
        and the session warns once."""
        response = attempt.protocol.partial()  # the call's collector, with this attempt's ids
        keep = not self.warmup or warmup_prepared(self.body, response.usage.input_tokens)
        parked = self.steering is not None and self.steering.parked
        self.lanes.completed(attempt.placement, response, keep=keep, parked=parked)
        if keep:
            self.prepared = True
        else:
            logger.debug("chain reset: the warm-up prepared nothing")
            self._gate.warn_once(UNPREPARED_WARMUP)

    def _recover(
        self, attempt: Attempt[ConnectionT], connection: ConnectionT, exc: LLMKitError
    ) -> LLMKitError | None:
        """Settle the lane and socket after ``exc``; the error to raise (``exc``, or
        what it means), or None when it is dealt with (sent again, or HTTP instead).

        A second clean close with no event (`silent_close`) raises `not_served`.
        """
        failure = attempt.failure(exc)
        placement = attempt.placement
        request_scoped = (
            isinstance(exc, APIError) and attempt.stage == "receive" and connection.connected
        )
        if request_scoped:
            assert isinstance(exc, APIError)
            verdict = self.lanes.failed(placement, exc, before_output=failure.events == 0)
            if verdict is Verdict.RESEND_WITHOUT_LANE:
                logger.debug("resending without a lane: %s", exc.message)
                self._note("llmkit.websocket.resend", _why("without_lane", exc))
                placement.connect = False  # on the same, open connection
                self._again = placement
                return None
            if verdict is Verdict.MOVE:
                logger.debug("moving the request to another connection: %s", exc.message)
                self._note("llmkit.websocket.resend", _why("other_connection", exc))
                return None
        action = decide(failure, resends_left=self._resends_left)
        if not request_scoped:
            if isinstance(exc, Timeout) and self._lanes_socket(placement, connection):
                self.lanes.abandoned(placement)  # one lane's stall: the lane drains
            else:
                self.lanes.drop(placement, "the response did not complete on this connection")
        elif action is Action.RECONNECT:
            self.lanes.retire(placement, exc.message)
        elif action is not Action.RESEND_FULL and placement.socket.capability != "lanes":
            self.lanes.drop(placement, "the response did not complete on this connection")
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
            where = "a new lane" if action is Action.RESEND_FULL else "reconnecting"
            logger.debug("resending with full input (%s) after: %s", where, exc.message)
            reconnect = action is not Action.RESEND_FULL
            self._note(
                "llmkit.websocket.reconnect" if reconnect else "llmkit.websocket.resend",
                _why("full_input", exc),
            )
            self._full = True
            self._resends_left -= 1
        return None

    def fallback_reason(self) -> str:
        """Why this turn went over HTTP (call only when `failure` is set)."""
        assert self.failure is not None
        reason = fallback_reason(self.failure)
        logger.debug("falling back to HTTP for one turn: %s", reason)
        self._note("llmkit.fallback", {"llmkit.fallback_reason": reason})
        return reason

    def _note(self, event: str, facts: Mapping[str, str | int | bool]) -> None:
        """Tell the call's observer (its OpenTelemetry span) of a decision; nobody
        watches unless the call is traced."""
        observer = self.collector.observer
        if observer is not None:
            observer(event, facts)

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
