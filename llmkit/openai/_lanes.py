"""Where a Responses WebSocket call goes when sockets carry `stream_id` lanes (pure).

PROTOCOL.md §5.2: a socket runs several responses at once, each on a lane (a named
``stream_id``, or the default lane) with its own cache head; a new lane may fork from
another lane's head. `LanePool` picks a call's (socket, lane) and frame, and keeps what
each lane's cache holds. No I/O, threads or clock: the shells feed it what happened.

Placement (issue 15; chains matched by content, `_chain.continuation`): the lane whose
head the call extends (the longest chain), if idle: only the new items go out; if busy
(in flight, or placed for a sibling), a **fork**: a new lane on the same socket chained
on that head, only the new items. Else a new conversation: a free lane on the
least-loaded socket with room; else a new socket (up to ``max_connections``); else the
least recently used idle lane (its chain given up); else `Wait`.

Responses in flight per socket are capped here at ``max_in_flight`` (16, the server's
limit); the server never queues ours. A server-queued create shows no sign of life (a
read timeout cannot tell it from a stall), still runs and bills if its caller gives up,
and may lose its fork parent (§5.2); a call waiting here costs nothing and waits at most
the pool timeout. So a chained call whose socket is full waits for it (`Wait`).

A lanes socket uses named lanes only: an error without ``stream_id`` is socket-level
there (§6.2), so the default lane's request errors could not be told from it. Capability
is learned per socket: its first request is a probe on a named lane, alone until its
first event, which echoes the ``stream_id`` (lanes), lacks it (ignored), or is an error
naming it (refused: resent without a lane). Ignored, refused and ``lanes=False`` run the
socket one response at a time on the default lane.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Generic, Literal, TypeVar

from llmkit.messages import AssistantMessage, UserMessage
from llmkit.openai._chain import (
    Chain,
    Continuation,
    Plan,
    compared_settings,
    continuation,
    plan_request,
    record_chain,
)
from llmkit.openai._encode import render_output

__all__ = [
    "Lane",
    "LanePool",
    "Placement",
    "Socket",
    "Verdict",
    "Wait",
    "event_facts",
    "is_terminal",
]

logger = logging.getLogger("llmkit")

JSON = dict[str, Any]
ConnectionT = TypeVar("ConnectionT")
MAX_IN_FLIGHT = 16
MAX_LANES = 32
STREAM_ID = re.compile(r"[A-Za-z0-9_.-]{1,256}")
STREAM_LIMIT_CODE = "websocket_stream_limit_reached"
Capability = Literal["unknown", "lanes", "refused", "ignored", "off"]
Kind = Literal["continue", "fork", "new"]


@dataclass(eq=False, slots=True)
class Lane:
    """One lane of a socket and what its cache head is known to contain."""

    stream_id: str | None
    """None: the default lane."""
    chain: Chain | None = None
    head_id: str | None = None
    current: Placement[Any] | None = None
    """The response placed on this lane and not yet ended (None: idle)."""
    last_used: int = 0
    parked: bool = False
    """The server keeps steer input for the head's next create on this lane only
    (``response.steer.pending``): a call extending the head waits for it, never forks."""

    def forget(self) -> None:
        self.chain = None
        self.head_id = None
        self.parked = False


@dataclass(eq=False, slots=True)
class Socket(Generic[ConnectionT]):
    """One pooled socket: its lanes and what it is known to support."""

    number: int
    capability: Capability
    connection: ConnectionT | None = None
    lanes: dict[str | None, Lane] = field(default_factory=dict)
    named_used: int = 0
    """Distinct named ``stream_id`` values sent over the socket's life."""
    named_limit: int = MAX_LANES
    retiring: bool = False

    @property
    def in_flight(self) -> int:
        """Responses placed here and not yet ended (abandoned ones until their end)."""
        return sum(lane.current is not None for lane in self.lanes.values())

    @property
    def closable(self) -> bool:
        """Retired (`LanePool.retire`) and idle: the shell closes it (`LanePool.drop`)."""
        return self.retiring and self.in_flight == 0


@dataclass(eq=False, slots=True)
class Placement(Generic[ConnectionT]):
    """Where one request goes, what to send, and the facts for its metadata."""

    socket: Socket[ConnectionT]
    lane: Lane
    body: Mapping[str, Any]
    continued: Continuation | None
    kind: Kind
    """``continue`` (the lane's own head), ``fork`` (another lane's head), ``new``."""
    warmup: bool = False
    connect: bool = False
    """The socket is new: the shell opens it (`LanePool.connected`) before sending."""
    abandoned: bool = False
    plan: Plan = field(init=False)
    frame: JSON = field(init=False)
    """The ``response.create`` frame to send (``stream_id`` included on a named lane)."""

    def __post_init__(self) -> None:
        self.replan()

    def replan(self) -> None:
        self.plan = plan_request(self.body, self.continued, warmup=self.warmup)
        self.frame = dict(self.plan.frame)
        if self.lane.stream_id is not None:
            self.frame["stream_id"] = self.lane.stream_id

    @property
    def stream_id(self) -> str | None:
        """The lane (None: the default lane), for ``ResponseMetadata.stream_id``."""
        return self.lane.stream_id

    @property
    def previous_response_id(self) -> str | None:
        """What the frame chains on, for ``ResponseMetadata.previous_response_id``."""
        value = self.frame.get("previous_response_id")
        return value if isinstance(value, str) else None

    @property
    def mode(self) -> Literal["full", "incremental"]:
        return self.plan.mode


@dataclass(frozen=True, slots=True)
class Wait:
    """No socket can take the call now: wait for a hand-over (`LanePool.hand_over`)."""

    reason: str


class Verdict(Enum):
    """What `LanePool.failed` made of a request-scoped error."""

    ENDED = "ended"
    """The lane's chain is dropped; recovery decides (a full resend: ``place(full=True)``)."""
    RESEND_WITHOUT_LANE = "resend_without_lane"
    """The server refused ``stream_id``: resend ``placement.frame`` (now laneless) on the
    same socket, already open, which runs one response at a time from now on."""
    MOVE = "move"
    """``websocket_stream_limit_reached``: place the body again (another socket)."""


@dataclass(frozen=True, slots=True)
class _Choice:
    socket: Socket[Any] | None  # None: open a new socket
    lane: Lane | None  # None: a new lane on ``socket``
    continued: Continuation | None
    kind: Kind
    rank: int


class LanePool(Generic[ConnectionT]):
    """The sockets of one session and their lanes; not thread-safe (the shells lock).

    The shells' protocol: `place` (or `Wait`); if `Placement.connect`, open the socket
    and call `connected` (or `drop` on failure); send `Placement.frame` (the connection's
    reader routes the frames by ``stream_id``); feed the first event of a probe to
    `answered`, each response's end to `completed`, `failed`, or (after `abandoned`)
    `drained`; feed a socket's close or failure (an error frame without ``stream_id`` on
    a lanes socket fails it, PROTOCOL.md §6.2) to `drop`. After anything that frees room,
    call `hand_over` with the waiting calls' bodies while it returns one.
    """

    def __init__(
        self,
        max_connections: int,
        *,
        lanes: bool = True,
        max_in_flight: int = MAX_IN_FLIGHT,
        max_lanes: int = MAX_LANES,
    ) -> None:
        self.max_connections = max_connections
        self.lanes = lanes
        self.max_in_flight = max_in_flight
        self.max_lanes = max_lanes
        self.sockets: list[Socket[ConnectionT]] = []
        self.learned: Literal["refused", "ignored"] | None = None
        """Set once a socket's probe found the server without lanes."""
        self._opened = 0
        self._clock = 0

    # -- placing ---------------------------------------------------------------------

    def place(
        self, body: Mapping[str, Any], *, warmup: bool = False, full: bool = False
    ) -> Placement[ConnectionT] | Wait:
        """Where ``body`` goes, reserved for it; or `Wait`. ``full``: chain on nothing
        (the resend after ``previous_response_not_found``)."""
        choice = self._choose(body, full=full)
        if isinstance(choice, Wait):
            return choice
        return self._apply(body, choice, warmup=warmup)

    def hand_over(
        self,
        bodies: Sequence[Mapping[str, Any]],
        *,
        warmups: Sequence[bool] = (),
        fulls: Sequence[bool] = (),
    ) -> tuple[int, Placement[ConnectionT]] | None:
        """Place the waiting call that gains most now; its index and placement.

        Affinity first: a waiter whose chain a lane holds (its own lane, then a fork)
        before a new conversation, ties to the earliest waiter; None while all must wait.
        ``warmups`` and ``fulls`` are the waiters' `place` flags.
        """
        best: tuple[int, int, _Choice] | None = None
        for index, body in enumerate(bodies):
            choice = self._choose(body, full=index < len(fulls) and fulls[index])
            if not isinstance(choice, Wait) and (best is None or choice.rank < best[0]):
                best = (choice.rank, index, choice)
        if best is None:
            return None
        _, index, choice = best
        warmup = index < len(warmups) and warmups[index]
        return index, self._apply(bodies[index], choice, warmup=warmup)

    def _choose(self, body: Mapping[str, Any], *, full: bool) -> _Choice | Wait:
        found = None if full else self._extends(body)
        if found is not None:
            lane, socket, continued = found
            if lane.current is None:
                if socket.in_flight < self._capacity(socket):
                    return _Choice(socket, lane, continued, "continue", 0)
                return Wait(f"WebSocket connection {socket.number} is at its in-flight limit")
            fresh = self._fresh(socket) if socket.capability == "lanes" else False
            if lane.parked:
                return Wait(f"lane {lane.stream_id} holds steer input for its next request")
            if fresh is not False:
                if socket.in_flight < self._capacity(socket):
                    return _Choice(socket, fresh, continued, "fork", 1)
                return Wait(f"WebSocket connection {socket.number} is at its in-flight limit")
        return self._new(body)

    def _extends(
        self, body: Mapping[str, Any]
    ) -> tuple[Lane, Socket[ConnectionT], Continuation | None] | None:
        """The lane whose head ``body`` extends: the longest chain, an idle lane on a tie;
        or the lane whose head is the body's own ``previous_response_id``."""
        explicit = body.get("previous_response_id")
        best: tuple[tuple[int, bool], Lane, Socket[ConnectionT], Continuation | None] | None
        best = None
        settings = compared_settings(body)  # once, for every lane tried
        for socket in self._open():
            for lane in socket.lanes.values():
                if explicit is not None and lane.head_id == explicit:
                    return lane, socket, None
                chain = lane.chain
                found = None if chain is None else continuation(body, chain, settings)
                key = (-1 if found is None else len(found.chain.context), lane.current is None)
                if found is not None and (best is None or key > best[0]):
                    best = (key, lane, socket, found)
        return None if best is None else best[1:]

    def _new(self, body: Mapping[str, Any]) -> _Choice | Wait:
        """A new conversation: a free lane, a new socket, a recycled lane, or `Wait`."""
        roomy = [s for s in self._open() if s.in_flight < self._capacity(s)]
        free = [(s, lane) for s in roomy if (lane := self._fresh(s)) is not False]
        if free:
            socket, lane = min(free, key=lambda pair: (pair[0].in_flight, pair[0].number))
            return _Choice(socket, lane or None, None, "new", 2)
        if any(s.capability == "unknown" for s in self.sockets):  # lanes or not: soon known
            return Wait("waiting for the first answer on a new WebSocket connection")
        if len(self.sockets) < self.max_connections:
            return _Choice(None, None, None, "new", 3)
        idle = [
            (lane.last_used, s.number, s, lane)
            for s in roomy
            for lane in s.lanes.values()
            if lane.current is None
        ]
        if idle:
            _, _, socket, lane = min(idle, key=lambda entry: entry[:2])
            return _Choice(socket, lane, None, "new", 4)
        return Wait(f"all {self.max_connections} WebSocket connections are at their limits")

    def _fresh(self, socket: Socket[ConnectionT]) -> Lane | Literal[False] | None:
        """A lane of ``socket`` holding nothing (a Lane), room for a new one (None), or
        neither (False)."""
        for lane in socket.lanes.values():
            if lane.current is None and lane.chain is None and lane.head_id is None:
                return lane
        if socket.capability in ("unknown", "lanes"):
            return None if socket.named_used < socket.named_limit else False
        return None if None not in socket.lanes else False

    def _apply(
        self, body: Mapping[str, Any], choice: _Choice, *, warmup: bool
    ) -> Placement[ConnectionT]:
        socket, connect = choice.socket, choice.socket is None
        if socket is None:
            socket = Socket(self._opened, self._starting_capability())
            socket.named_limit = self.max_lanes
            self._opened += 1
            self.sockets.append(socket)
        lane = choice.lane if choice.lane is not None else self._open_lane(socket)
        if choice.kind == "new" and lane.chain is not None:
            logger.debug("lane %s of WebSocket %d given up for a new conversation",
                         lane.stream_id, socket.number)  # fmt: skip
        if choice.kind == "new":
            lane.forget()
        self._clock += 1
        lane.last_used = self._clock
        placement = Placement(socket, lane, body, choice.continued, choice.kind, warmup, connect)
        lane.current = placement
        if choice.kind == "fork":
            logger.debug("fork on lane %s of WebSocket %d from %s", lane.stream_id,
                         socket.number, placement.previous_response_id)  # fmt: skip
        return placement

    def _starting_capability(self) -> Capability:
        """What a new socket is assumed to support: unknown (it probes), unless lanes
        are off or another socket of the same server already refused or ignored them
        (the same server answers the same way: no probe is paid per socket)."""
        if not self.lanes:
            return "off"
        return self.learned or "unknown"

    def _open_lane(self, socket: Socket[ConnectionT]) -> Lane:
        if socket.capability not in ("unknown", "lanes"):
            return socket.lanes.setdefault(None, Lane(None))
        socket.named_used += 1
        lane = Lane(f"lane-{socket.named_used}")
        socket.lanes[lane.stream_id] = lane
        logger.debug("new lane %s on WebSocket %d", lane.stream_id, socket.number)
        return lane

    def _capacity(self, socket: Socket[ConnectionT]) -> int:
        return self.max_in_flight if socket.capability == "lanes" else 1

    def _open(self) -> list[Socket[ConnectionT]]:
        return [s for s in self.sockets if not s.retiring]

    # -- what happened ---------------------------------------------------------------

    def connected(self, socket: Socket[ConnectionT], connection: ConnectionT) -> None:
        """The new socket of a placement (`Placement.connect`) is open."""
        socket.connection = connection

    def answered(self, placement: Placement[ConnectionT], stream_id: str | None) -> None:
        """The first event of ``placement``'s response arrived carrying ``stream_id``
        (an ``error`` frame goes to `failed` instead).

        It settles a probe: an echo proves lanes; no ``stream_id`` on a named-lane request
        means the server ignores it, so the response runs on the default lane.
        """
        socket = placement.socket
        if socket.capability != "unknown" or placement.stream_id is None:
            return
        if stream_id == placement.stream_id:
            socket.capability = "lanes"
            return
        self._one_at_a_time(placement, "ignored")

    def completed(
        self,
        placement: Placement[ConnectionT],
        response_id: str | None,
        messages: AssistantMessage | Sequence[AssistantMessage | UserMessage],
        *,
        parked: bool = False,
    ) -> None:
        """The response ended ``completed``/``incomplete``: the lane's head is now it.

        ``messages`` are what the call added to the conversation as the server holds it
        (`Response.messages`: a steered call's outputs around its steer input, ending
        with input the server keeps for the next create when ``parked``)."""
        lane = self._end(placement)
        if placement.abandoned:
            return
        lane.head_id = response_id
        lane.parked = parked
        store = bool(placement.body.get("store", False))
        if isinstance(messages, AssistantMessage):
            messages = (messages,)
        output = [item for message in messages for item in render_output(message, store=store)]
        lane.chain = record_chain(placement.body, placement.plan, response_id, output)

    def failed(
        self,
        placement: Placement[ConnectionT],
        code: str | None,
        param: str | None,
        *,
        before_output: bool,
        message: str = "",
    ) -> Verdict:
        """A request-scoped error (an ``error`` frame of this lane, or ``response.failed``)
        ended ``placement``'s response: what it means for the lane and the request.

        An error before any output on a probe that names ``stream_id`` (its ``param``,
        else its ``message``) is the server refusing lanes; so is a lane limit there (a
        probe is its socket's first lane: the socket holds none).
        """
        socket = placement.socket
        refused = param == "stream_id" or "stream_id" in message or code == STREAM_LIMIT_CODE
        if before_output and socket.capability == "unknown" and refused:
            self._one_at_a_time(placement, "refused")
            placement.replan()
            placement.connect = False  # the socket is open: the refusal came over it
            return Verdict.RESEND_WITHOUT_LANE
        lane = self._end(placement)
        lane.forget()
        if before_output and code == STREAM_LIMIT_CODE and placement.stream_id is not None:
            if placement.kind != "continue":  # the server never opened this lane
                del socket.lanes[placement.stream_id]
            socket.named_limit = len([k for k in socket.lanes if k is not None])
            logger.debug("WebSocket %d holds no more lanes", socket.number)
            return Verdict.MOVE
        return Verdict.ENDED

    def abandoned(self, placement: Placement[ConnectionT]) -> None:
        """The caller gave up on the response (closed or cancelled its stream): the lane
        is unusable until `drained`; the reader discards its frames meanwhile."""
        placement.abandoned = True
        if placement.lane.current is placement:  # else drained already, maybe reused
            placement.lane.forget()  # whatever ends the response decides the head

    def cancel(self, placement: Placement[ConnectionT]) -> None:
        """``placement`` was never sent (its caller gave up, or it must go elsewhere):
        the lane is free again; a socket that was never opened is forgotten."""
        self._end(placement)
        socket = placement.socket
        if socket.connection is None and not any(lane.current for lane in socket.lanes.values()):
            self.drop(socket)

    def drained(self, placement: Placement[ConnectionT]) -> None:
        """The terminal event of an abandoned response arrived: its lane is free."""
        self._end(placement)

    def drop(self, socket: Socket[ConnectionT]) -> list[Placement[ConnectionT]]:
        """The socket is gone (closed, a socket-level error, failed to open, or retired
        and idle): every chain of it is dropped; the responses it failed are returned."""
        if socket in self.sockets:
            self.sockets.remove(socket)
        failed = [lane.current for lane in socket.lanes.values() if lane.current is not None]
        for lane in socket.lanes.values():
            lane.current = None
            lane.forget()
        logger.debug("WebSocket %d dropped with %d responses", socket.number, len(failed))
        return failed

    def retire(self, socket: Socket[ConnectionT]) -> None:
        """Send nothing more on ``socket`` (too old); close it once `Socket.closable`."""
        socket.retiring = True  # its chains serve no one now: placement skips it

    def _end(self, placement: Placement[ConnectionT]) -> Lane:
        lane = placement.lane
        if lane.current is placement:
            lane.current = None
        return lane

    def _one_at_a_time(self, placement: Placement[ConnectionT], why: Capability) -> None:
        """The probe's server has no lanes: its request moves to the default lane."""
        socket = placement.socket
        logger.debug("WebSocket %d: stream_id %s; one response at a time", socket.number, why)
        socket.capability = why
        self.learned = "refused" if why == "refused" else "ignored"
        socket.lanes.pop(placement.stream_id, None)
        socket.named_used = 0
        lane = socket.lanes.setdefault(None, Lane(None))
        lane.current = placement
        placement.lane = lane


TERMINAL = frozenset({"response.completed", "response.incomplete", "response.failed", "error"})


def event_facts(text: str) -> tuple[str | None, str | None]:
    """The ``type`` and ``stream_id`` of an event's JSON text (None where absent).

    Read only for a probe's first frame and an abandoned lane's frames: never on the
    path of every event.
    """
    try:
        event = json.loads(text)
    except ValueError:
        return None, None
    if not isinstance(event, dict):
        return None, None
    kind, stream_id = event.get("type"), event.get("stream_id")
    return (
        kind if isinstance(kind, str) else None,
        stream_id if isinstance(stream_id, str) else None,
    )


def is_terminal(text: str) -> bool:
    """Whether ``text`` is the last event of its response (PROTOCOL.md §2)."""
    return event_facts(text)[0] in TERMINAL
