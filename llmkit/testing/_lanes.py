"""The lanes of one WebSocket connection: admission, scheduling, heads and eviction.

Pure bookkeeping (no I/O), used by `_ws.Connection`. PROTOCOL.md §5.2: `stream_id` names
an ordered lane; one lane runs its responses in order (FIFO, no overlap), different
lanes run concurrently up to `max_in_flight` responses per socket (further creates wait
in their lane's queue); at most `max_lanes` distinct named lanes over the socket's life
(the default lane, no `stream_id`, is not counted). Each lane keeps its latest response
(its head) in the connection-local cache (§3.1); `previous_response_id` may name any
lane's head (a fork when it is another lane's). Eviction (§3.1): a same-lane continuation
that fails (a pre-flight 4xx, an `error` event or `response.failed`) drops the head it
referenced; a fork that fails keeps the parent.

The modes of a server without lanes (§5.1, §5.4) run every response of the socket on one
lane with one cached head, one at a time: ``"refuse"`` answers a `stream_id` with an
``unsupported_parameter`` error, ``"ignore"`` accepts it and never echoes it,
``"serial"`` accepts and echoes it.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Literal

from llmkit.testing._events import ApiError
from llmkit.testing._state import StoredResponse

LaneMode = Literal["lanes", "refuse", "ignore", "serial"]
HeadEviction = Literal["end", "start"]
BusyPolicy = Literal["queue", "error"]
LANE_MODES: tuple[str, ...] = ("lanes", "refuse", "ignore", "serial")
STREAM_ID = re.compile(r"[A-Za-z0-9_.-]{1,256}")
BUSY_CODE = "conversation_already_has_active_response"
STREAM_LIMIT_CODE = "websocket_stream_limit_reached"
LaneKey = str | None


@dataclass(frozen=True, slots=True)
class LaneSettings:
    """How a connection treats `stream_id` (fixed when the connection opens)."""

    mode: LaneMode = "lanes"
    max_in_flight: int = 16
    max_lanes: int = 32
    head_eviction: HeadEviction = "end"
    when_busy: BusyPolicy = "queue"
    preflight_evicts: bool = True


@dataclass(slots=True)
class Pending:
    """An accepted `response.create` waiting for (or holding) its lane."""

    body: dict[str, Any]
    record: int
    key: LaneKey
    echo: str | None
    committed: bool = False


@dataclass(frozen=True, slots=True)
class Refusal:
    """A create refused on arrival; `echo` is the `stream_id` its error carries."""

    error: ApiError
    echo: str | None = None


@dataclass(slots=True)
class _Lane:
    head: StoredResponse | None = None
    active: bool = False


@dataclass(slots=True)
class Lanes:
    settings: LaneSettings = field(default_factory=LaneSettings)
    lanes: dict[LaneKey, _Lane] = field(default_factory=dict)
    waiting: deque[Pending] = field(default_factory=deque)
    in_flight: int = 0
    live: int = 0  # started or waiting, not yet committed (what "busy" means)

    @property
    def named(self) -> list[str]:
        return [k for k in self.lanes if k is not None]

    @property
    def lanes_on(self) -> bool:
        return self.settings.mode == "lanes"

    def admit(self, body: dict[str, Any], record: int) -> Pending | Refusal:
        """Decide the lane of a create on arrival, or refuse it (request-scoped)."""
        sid = body.get("stream_id")
        mode = self.settings.mode
        if sid is None or mode == "ignore":
            key: LaneKey = None
            echo = None
        elif mode == "refuse":
            return Refusal(
                ApiError(
                    400,
                    "Unsupported parameter: stream_id",
                    code="unsupported_parameter",
                    param="stream_id",
                )
            )
        elif not isinstance(sid, str) or STREAM_ID.fullmatch(sid) is None:
            msg = "Invalid 'stream_id': expected 1 to 256 characters from [A-Za-z0-9_.-]."
            error = ApiError(400, msg, code="invalid_stream_id", param="stream_id")
            return Refusal(error, sid if isinstance(sid, str) else None)
        else:
            key = sid if mode == "lanes" else None
            echo = sid
        if key is not None and key not in self.lanes and len(self.named) >= self.settings.max_lanes:
            msg = (
                f"This websocket connection already uses {self.settings.max_lanes} stream_id "
                "values. Reuse a stream_id or open a new websocket connection."
            )
            error = ApiError(400, msg, code=STREAM_LIMIT_CODE, param="stream_id")
            return Refusal(error, echo)
        if not self.lanes_on and self.settings.when_busy == "error" and self.live > 0:
            msg = (
                "Another response is already in progress on this connection. Wait for its "
                "terminal event before sending another response.create."
            )
            return Refusal(ApiError(400, msg, code=BUSY_CODE), echo)
        self.lanes.setdefault(key, _Lane())
        pending = Pending(body, record, key, echo)
        self.waiting.append(pending)
        self.live += 1
        return pending

    def next_ready(self) -> Pending | None:
        """The oldest waiting create whose lane is free, if a slot is free; marks it started."""
        limit = self.settings.max_in_flight if self.lanes_on else 1
        if self.in_flight >= limit:
            return None
        for pending in self.waiting:
            lane = self.lanes[pending.key]
            if not lane.active:
                self.waiting.remove(pending)
                lane.active = True
                self.in_flight += 1
                return pending
        return None

    def resolve(self, wanted: Any) -> tuple[StoredResponse | None, LaneKey, bool]:
        """The cached head named `wanted`, its lane, and whether one was found."""
        for key, lane in self.lanes.items():
            if lane.head is not None and lane.head.id == wanted:
                return lane.head, key, True
        return None, None, False

    def started(self, pending: Pending) -> None:
        """The response began (after validation): with ``"start"`` its lane's head leaves."""
        if self.settings.head_eviction == "start":
            self.lanes[pending.key].head = None

    def completed(self, pending: Pending, entry: StoredResponse) -> None:
        self.lanes[pending.key].head = entry
        self._commit(pending)

    def failed(self, pending: Pending, wanted: Any, owner: LaneKey, found: bool) -> None:
        """A same-lane continuation that failed evicts what it referenced; a fork keeps it."""
        lane = self.lanes[pending.key]
        if found and owner == pending.key and lane.head is not None and lane.head.id == wanted:
            lane.head = None
        self._commit(pending)

    def refused(self, pending: Pending, wanted: Any, owner: LaneKey, found: bool) -> None:
        """Refused before `response.created` (a 400 or an `error` event): §5.4 leaves open
        whether that evicts; `preflight_evicts` says (a failed response always does)."""
        self.failed(pending, wanted, owner, found and self.settings.preflight_evicts)

    def _commit(self, pending: Pending) -> None:
        if not pending.committed:
            pending.committed = True
            self.live -= 1

    def release(self, pending: Pending) -> None:
        """The response's last frame is out: its lane and its slot are free again."""
        self._commit(pending)
        self.lanes[pending.key].active = False
        self.in_flight -= 1
