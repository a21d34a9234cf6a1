"""What a WebSocket reader decides, sync or async, without a socket: routing and heartbeats.

A socket may carry several responses at once (``stream_id`` lanes, PROTOCOL.md §5.2),
so the party that reads a frame is not always the one it belongs to. `Router` says
where a frame goes: to the receiver of its lane, away (a lane whose receiver gave up,
until that response's end), into a lane's backlog (nobody claimed it yet), or to every
receiver (a frame of no lane on a socket whose lanes are named: the protocol makes it
connection-level). `Heartbeat` says when an idle socket is due a client ping and when
a missing pong means the peer is gone. The shells (`_ws_reader`, `_async_ws_reader`,
`_ws_keepalive`) only do the reading, waiting and waking.

The per-frame cost matters (every event of every stream passes here): while one
receiver is alone on its socket and no lane is being drained, `Router.route` returns
it without looking at the frame.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Final, Generic, Literal, TypeVar

__all__ = [
    "BROADCAST",
    "DISCARD",
    "STASH",
    "Heartbeat",
    "Lane",
    "Router",
    "stream_id_of",
]

Lane = str | None
"""A lane: its ``stream_id``, or None for the default lane."""

R = TypeVar("R")

DISCARD: Final = "discard"
STASH: Final = "stash"
BROADCAST: Final = "broadcast"
Elsewhere = Literal["discard", "stash", "broadcast"]

_KEY = '"stream_id"'
MAX_BACKLOG = 10_000
"""Frames kept for a lane nobody has claimed yet; past it the socket is failed."""


def stream_id_of(text: str) -> str | None:
    """The top-level ``stream_id`` of an event's JSON text, or None.

    A substring test first: most frames name no lane and cost nothing more. A
    ``"stream_id"`` inside a string value is escaped (``\\"stream_id\\"``), so only a
    key (at any depth) or a value spelled exactly so matches; then the frame is decoded
    to read the top-level field only.
    """
    if _KEY not in text:
        return None
    try:
        event = json.loads(text)
    except ValueError:
        return None
    value = event.get("stream_id") if isinstance(event, dict) else None
    return value if isinstance(value, str) else None


@dataclass(slots=True)
class _Abandoned:
    is_end: Callable[[str], bool]
    drained: Callable[[], None] | None = None


@dataclass(eq=False, slots=True)
class Router(Generic[R]):
    """The receivers of one socket, by lane, and where each incoming frame goes.

    Not thread-safe by itself: the sync reader calls it under its lock, the async
    reader from its event loop.
    """

    receivers: dict[Lane, R] = field(default_factory=dict)
    abandoned: dict[Lane, _Abandoned] = field(default_factory=dict)
    backlog: dict[Lane, deque[str]] = field(default_factory=dict)
    only: R | None = None
    """The receiver that gets every frame unseen: the one receiver, nothing abandoned."""

    def add(self, lane: Lane, receiver: R) -> deque[str]:
        """Register ``receiver`` for ``lane``; returns what arrived for it already.

        Raises:
            ValueError: the lane has a receiver, or is still being drained.
        """
        if lane in self.receivers or lane in self.abandoned:
            raise ValueError(f"lane {lane!r} is busy on this connection")
        self.receivers[lane] = receiver
        self._refresh()
        return self.backlog.pop(lane, None) or deque()

    def remove(self, lane: Lane, receiver: R) -> None:
        """``receiver`` is done with ``lane`` (its response ended, or it failed)."""
        if self.receivers.get(lane) is receiver:
            del self.receivers[lane]
            self._refresh()

    def abandon(
        self,
        lane: Lane,
        receiver: R,
        is_end: Callable[[str], bool],
        drained: Callable[[], None] | None = None,
    ) -> None:
        """``receiver`` gives up on its response: the lane's frames are dropped until
        one for which ``is_end`` is true (its terminal event), then the lane is free and
        ``drained`` is called (by whoever routed that frame)."""
        if self.receivers.get(lane) is receiver:
            del self.receivers[lane]
            self.abandoned[lane] = _Abandoned(is_end, drained)
            self._refresh()

    @property
    def idle(self) -> bool:
        """No receiver and nothing to drain: frames now are nobody's."""
        return not self.receivers and not self.abandoned

    def route(self, text: str) -> R | Elsewhere:
        """Where ``text`` goes: a receiver, `DISCARD`, `STASH` (into `backlog` under
        its lane, see `stash`), or `BROADCAST` (to every receiver, then the socket is
        failed: a frame of the default lane nobody waits for, on a socket whose other
        lanes are busy, is connection-level, PROTOCOL.md §6.2)."""
        only = self.only
        if only is not None:
            return only
        lane = stream_id_of(text)
        receiver = self.receivers.get(lane)
        if receiver is not None:
            return receiver
        drained = self.abandoned.get(lane)
        if drained is not None:
            if drained.is_end(text):
                del self.abandoned[lane]
                self._refresh()
                if drained.drained is not None:  # after the lane is free here
                    drained.drained()
            return DISCARD
        if lane is None and self.receivers:
            return BROADCAST
        return STASH

    def stash(self, text: str) -> bool:
        """Keep ``text`` for its lane's receiver to come; False past `MAX_BACKLOG`."""
        queue = self.backlog.setdefault(stream_id_of(text), deque())
        queue.append(text)
        return len(queue) <= MAX_BACKLOG

    def __iter__(self) -> Iterator[R]:
        return iter(list(self.receivers.values()))

    def _refresh(self) -> None:
        alone = len(self.receivers) == 1 and not self.abandoned
        self.only = next(iter(self.receivers.values())) if alone else None


@dataclass(slots=True)
class Heartbeat:
    """When an idle socket is due a client ping, and when its peer counts as gone.

    ``interval`` None: no client pings (server pings are still answered). Anything
    received counts as a sign of life (PROTOCOL.md §1.4), a pong or not.
    """

    interval: float | None
    pong_timeout: float | None = None
    since: float = 0.0
    """When the socket last went idle or last showed life."""
    ping_sent: float | None = None

    def __post_init__(self) -> None:
        if self.pong_timeout is None:
            self.pong_timeout = self.interval

    def alive(self, now: float) -> None:
        """Something arrived, or the socket just went idle: the count starts again."""
        self.since = now
        self.ping_sent = None

    def pinged(self, now: float) -> None:
        """A client ping went out."""
        self.ping_sent = now

    def due(self, now: float) -> Literal["ping", "dead"] | None:
        """What the idle socket needs now: a ping, to be closed (no pong in time), or
        nothing."""
        if self.interval is None:
            return None
        if self.ping_sent is not None:
            assert self.pong_timeout is not None
            return "dead" if now - self.ping_sent >= self.pong_timeout else None
        return "ping" if now - self.since >= self.interval else None

    def wait(self, now: float) -> float | None:
        """Seconds until `due` may change (None: never, no pings)."""
        if self.interval is None:
            return None
        if self.ping_sent is not None:
            assert self.pong_timeout is not None
            return max(0.0, self.ping_sent + self.pong_timeout - now)
        return max(0.0, self.since + self.interval - now)
