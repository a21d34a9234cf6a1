"""The WebSocket session's decisions (pure): `Lanes`, `Attempt`, `Turn`, `CooldownGate`.

``llmkit.openai._session`` holds no sockets, so its rules are checked here on stand-in
connections that only have an age, an open flag and a ``close``, driven the way the
shells (``_websocket``, ``_async_websocket``) drive them. Where a call goes on the
sockets' lanes is `LanePool`'s, checked in tests/test_lanes.py; tests/test_session.py
checks the same decisions through `Provider` and `AsyncProvider` over real sockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from dataclasses import dataclass
from typing import Any, Literal

import events as ev
import pytest

import llmkit
from llmkit._deadline import Deadline
from llmkit.openai._chain import Chain
from llmkit.openai._lanes import Placement
from llmkit.openai._recovery import Cooldown, Failure
from llmkit.openai._session import (
    COOLING_DOWN,
    UNPREPARED_WARMUP,
    CooldownGate,
    Lanes,
    Turn,
    Waiter,
)
from llmkit.stream import Finish

USER = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]}
OTHER = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "yo"}]}
ANSWER = {
    "type": "message",
    "role": "assistant",
    "content": [{"type": "output_text", "text": "ok", "annotations": []}],
}
REASONING = {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "t"}]}
Server = Literal["lanes", "ignore"]


@dataclass(eq=False)
class Link:
    """A stand-in connection: its age, whether it is open, how often it was closed.

    ``lock`` is the session's: a connection is never closed while it is held (a reader
    may call into the session holding its own lock, `Lanes`).
    """

    age: float = 0.0
    lost: bool = False
    """The socket failed under the session (its reader saw it go)."""
    closes: int = 0
    lock: Any = None

    @property
    def connected(self) -> bool:
        return not self.closes and not self.lost

    @property
    def closed(self) -> bool:
        return self.closes > 0

    def close(self) -> None:
        assert self.lock is None or not self.lock.locked(), "closed under the session's lock"
        self.closes += 1


@dataclass
class Frames:
    """A stand-in payload stream that counted ``received`` frames."""

    received: int = 0


def body(*items: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"model": "m", **fields, "input": list(items)}


def history(turns: int) -> list[dict[str, Any]]:
    """A conversation of ``turns`` user/assistant pairs."""
    return [USER, ANSWER] * turns


def chain(context: list[dict[str, Any]], response_id: str = "resp_1") -> Chain:
    return Chain(response_id, {"model": "m"}, tuple(context))


def session(size: int = 1, *, lanes: bool = True, wait_timeout: float | None = None) -> Lanes[Link]:
    return Lanes(size, wait_timeout, lanes=lanes)


def turn(lanes: Lanes[Link], payload: dict[str, Any] | None = None, **kwargs: Any) -> Turn[Link]:
    options: dict[str, Any] = {"warmup": False, "max_age": 10.0}
    options.update(kwargs)
    gate = options.pop("gate", None) or CooldownGate(Cooldown(initial=30.0))
    return Turn(lanes, payload or body(USER), gate=gate, **options)


def start(step: Turn[Link], link: Link | None = None) -> tuple[Placement[Link], Link]:
    """The next placement of ``step`` and its connection, as a shell gets them: a new
    one opened (``link``), or the pooled one."""
    placement = step.place()
    assert isinstance(placement, Placement)
    if placement.connect:
        link = link or Link()
        link.lock = step.lanes._lock
        step.connected(placement, link)
        return placement, link
    pooled = step.reusable(placement)
    assert pooled is not None
    return placement, pooled


def first_event(stream_id: str | None) -> str:
    """A response's first event, on lane ``stream_id`` (None: no ``stream_id``)."""
    lane = {} if stream_id is None else {"stream_id": stream_id}
    return ev.event("response.created", response=ev.response_object("resp_x"), **lane)


def reply(response_id: str = "resp_1", **fields: Any) -> list[str]:
    """The events of a response answering "ok"."""
    return [
        ev.created(response_id),
        *ev.message_events("msg_1", ["ok"]),
        ev.completed(response_id, **fields),
    ]


def finish(
    step: Turn[Link],
    placement: Placement[Link],
    link: Link,
    events: list[str] | None = None,
    *,
    server: Server = "lanes",
) -> None:
    """Run the attempt of ``placement`` to its end: the server answers a probe on its
    lane (``server="lanes"``) or without one, then sends ``events``."""
    events = reply() if events is None else events
    with step.attempt(placement, link) as attempt:
        attempt.sent(Frames(received=len(events)))
        assert attempt.end is not None
        if attempt.end.answered is not None:  # a probe
            attempt.end.answered(first_event(placement.stream_id if server == "lanes" else None))
        for event in events:
            attempt.protocol.receive(event)
    assert step.over


def serve(
    step: Turn[Link], events: list[str] | None = None, *, server: Server = "lanes"
) -> tuple[Placement[Link], Link]:
    """One whole turn that completes (``events``: "ok" as ``resp_1``)."""
    placement, link = start(step)
    finish(step, placement, link, events, server=server)
    return placement, link


def fail(error: BaseException) -> None:
    """Raise ``error`` (inside an attempt, which may swallow it)."""
    raise error


def attempt_fails(
    step: Turn[Link], placement: Placement[Link], link: Link, error: BaseException, received: int
) -> None:
    """An attempt of ``placement`` that received ``received`` frames, then ``error``."""
    with step.attempt(placement, link) as attempt:
        attempt.sent(Frames(received=received))
        fail(error)


def said(caplog: pytest.LogCaptureFixture) -> list[str]:
    """What the session (not the pool under it) logged."""
    return [r.getMessage() for r in caplog.records if r.module == "_session"]


def waiting(lanes: Lanes[Link], payload: dict[str, Any]) -> tuple[Waiter[Link], list[str]]:
    """A call that found no room, armed: the list records its wake."""
    found = lanes.place(payload, warmup=False, full=False)
    assert isinstance(found, Waiter)
    woken: list[str] = []
    assert lanes.arm(found, lambda: woken.append("woken"))
    return found, woken


def not_found() -> llmkit.BadRequestError:
    return llmkit.BadRequestError("gone", status_code=400, code="previous_response_not_found")


# --------------------------------------------------------------------------- placing


@pytest.mark.parametrize("order", [(1, 3, 2), (3, 1, 2), (2, 1, 3)])
@pytest.mark.parametrize("lanes_on", [True, False], ids=["lanes", "one-at-a-time"])
def test_a_call_goes_to_the_idle_lane_with_the_longest_chain_it_extends(
    order: tuple[int, int, int], lanes_on: bool
) -> None:
    lanes = session(3, lanes=lanes_on)
    placed = [serve(turn(lanes, body(USER)))[0] for _ in range(3)]
    for placement, turns in zip(placed, order, strict=True):
        placement.lane.chain = chain(history(turns))
    picked, _ = start(turn(lanes, body(*history(4), USER)))
    assert picked.lane is placed[order.index(3)].lane
    assert picked.plan.frame["input"] == [*history(1), USER]  # after the 3 turns it holds


def test_of_two_lanes_holding_the_same_chain_the_first_is_picked() -> None:
    lanes = session(2, lanes=False)
    first, second = (serve(turn(lanes, body(USER)))[0] for _ in range(2))
    first.lane.chain = second.lane.chain = chain(history(2))
    picked, _ = start(turn(lanes, body(*history(2), USER)))
    assert picked.lane is first.lane


def test_a_busy_lane_is_never_picked_even_when_its_chain_matches() -> None:
    lanes = session(2, lanes=False)
    first, second = (serve(turn(lanes, body(USER)))[0] for _ in range(2))
    first.lane.chain = chain(history(2))
    second.lane.chain = chain(history(1))
    payload = body(*history(2), USER)
    busy, _ = start(turn(lanes, payload))
    assert busy.lane is first.lane and busy.mode == "incremental"
    other, _ = start(turn(lanes, payload))
    assert other.lane is second.lane  # not the busy one
    assert isinstance(lanes.place(payload, warmup=False, full=False), Waiter)  # all busy


def test_a_call_without_a_previous_response_id_never_matches_a_lane_without_a_head() -> None:
    lanes = session(2, lanes=False)
    first, second = (serve(turn(lanes, body(USER)))[0] for _ in range(2))
    first.lane.chain, second.lane.head_id = chain(history(3)), None
    first.lane.last_used, second.lane.last_used = 1, 2  # the least recently used: `first`
    picked, _ = start(turn(lanes, body(OTHER)))
    assert picked.lane is first.lane and picked.kind == "new"


@pytest.mark.parametrize("times", [(5, 3, 4), (3, 5, 4), (4, 5, 3)])
def test_a_new_conversation_in_a_full_pool_gets_the_least_recently_used_lane(
    times: tuple[int, int, int],
) -> None:
    lanes = session(3, lanes=False)
    placed = [serve(turn(lanes, body(USER)))[0] for _ in range(3)]
    for placement, used in zip(placed, times, strict=True):
        placement.lane.last_used = used
    picked, _ = start(turn(lanes, body(OTHER)))
    assert picked.lane is placed[times.index(3)].lane
    assert picked.mode == "full" and picked.lane.chain is None  # its chain given up


def test_the_pool_grows_to_its_size_before_it_recycles_a_lane() -> None:
    lanes = session(2, lanes=False)
    first, _ = serve(turn(lanes, body(USER)))
    second, _ = start(turn(lanes, body(OTHER)))  # a new socket, not the idle chained one
    assert second.connect and second.socket is not first.socket
    third, _ = start(turn(lanes, body(OTHER, OTHER)))
    assert third.socket is first.socket and not third.connect
    assert [s.number for s in lanes.pool.sockets] == [0, 1] and len(lanes.connections()) == 2


# --------------------------------------------------------------------------- Lanes


def test_a_call_that_finds_no_room_waits_and_is_handed_the_freed_lane() -> None:
    lanes = session(1, lanes=False)
    step = turn(lanes)
    busy, link = start(step)
    waiter, woken = waiting(lanes, body(OTHER))
    assert waiter.reason == "all 1 WebSocket connections are at their limits"
    assert waiter.placement is None and woken == []
    finish(step, busy, link)
    assert woken == ["woken"]
    handed = lanes.withdraw(waiter)
    assert handed is not None and handed.socket is busy.socket and not handed.connect
    assert not lanes.arm(waiter, lambda: None), "placed already: nothing to wait for"


def test_a_freed_lane_goes_first_to_the_waiter_whose_chain_a_lane_holds() -> None:
    lanes = session(1)
    lanes.pool.max_in_flight = 2  # the socket's in-flight limit, small for the test
    served, link = serve(turn(lanes, body(USER)))
    fillers = [turn(lanes, body(OTHER)) for _ in range(2)]
    placed = [start(filler) for filler in fillers]
    assert {p.socket for p, _ in placed} == {served.socket}
    stranger, stranger_woken = waiting(lanes, body(OTHER))
    own, own_woken = waiting(lanes, body(*history(1), USER))  # queued later
    finish(fillers[0], *placed[0])
    assert (own_woken, stranger_woken) == (["woken"], [])
    handed = lanes.withdraw(own)
    assert handed is not None and handed.lane is served.lane and handed.mode == "incremental"
    finish(fillers[1], *placed[1])
    assert stranger_woken == ["woken"] and lanes.withdraw(stranger) is not None
    assert not link.closed


def test_a_withdrawn_waiter_is_not_placed_later() -> None:
    lanes = session(1, lanes=False)
    step = turn(lanes)
    busy, link = start(step)
    waiter, woken = waiting(lanes, body(OTHER))
    assert lanes.withdraw(waiter) is None  # it gave up (its wait ran out)
    finish(step, busy, link)
    assert woken == [] and waiter.placement is None
    assert busy.lane.current is None, "the freed lane stays free"


def test_a_cancelled_placement_gives_its_room_back() -> None:
    lanes = session(1, lanes=False)
    unopened = lanes.place(body(USER), warmup=False, full=False)
    assert isinstance(unopened, Placement) and unopened.connect
    lanes.cancel(unopened)  # its connect was cancelled: the socket never opened
    assert lanes.pool.sockets == []
    busy, link = serve(turn(lanes, body(USER)))
    placed, _ = start(turn(lanes, body(*history(1), USER)))
    waiter, woken = waiting(lanes, body(OTHER))
    lanes.cancel(placed)  # never sent (a cancelled call, or a connection too old)
    assert woken == ["woken"]
    handed = lanes.withdraw(waiter)
    assert handed is not None and handed.socket is busy.socket and not link.closed


def test_drop_closes_the_connection_outside_the_lock_and_wakes_a_waiter(
    caplog: pytest.LogCaptureFixture,
) -> None:
    lanes = session(1, lanes=False)
    first, link = serve(turn(lanes, body(USER)))
    placed, _ = start(turn(lanes, body(*history(1), USER)))
    waiter, woken = waiting(lanes, body(OTHER))
    with caplog.at_level(logging.DEBUG, logger="llmkit"):
        lanes.drop(placed, "test")
    assert link.closes == 1  # and not under the lock (`Link.close`)
    assert (first.lane.chain, first.lane.head_id) == (None, None)
    assert first.socket not in lanes.pool.sockets and lanes.connections() == []
    assert said(caplog) == [
        "closing WebSocket connection 0: test",
        "chain reset on WebSocket connection 0: test",
    ]
    handed = lanes.withdraw(waiter)
    assert woken == ["woken"] and handed is not None and handed.connect


def test_drop_forgets_the_chain_of_every_lane_of_the_socket() -> None:
    lanes = session(1)
    a, link = serve(turn(lanes, body(USER)))
    b, _ = serve(turn(lanes, body(OTHER)))
    assert a.socket is b.socket and a.lane is not b.lane and b.lane.chain is not None
    lanes.drop(b, "test")
    assert link.closed and all(lane.chain is None for lane in a.socket.lanes.values())
    again, _ = start(turn(lanes, body(*history(1), USER)))
    assert again.connect and again.mode == "full"


def test_retire_closes_an_idle_socket_at_once(caplog: pytest.LogCaptureFixture) -> None:
    lanes = session(1, lanes=False)
    _, link = serve(turn(lanes, body(USER)))
    placed = lanes.place(body(*history(1), USER), warmup=False, full=False)
    assert isinstance(placed, Placement)
    lanes.cancel(placed)
    with caplog.at_level(logging.DEBUG, logger="llmkit"):
        lanes.retire(placed, "old")
    assert link.closes == 1 and lanes.pool.sockets == []
    assert said(caplog) == [
        "retiring WebSocket connection 0: old",
        "closing WebSocket connection 0: retired and idle",
    ]


def test_retire_closes_a_busy_socket_once_its_last_response_ended(
    caplog: pytest.LogCaptureFixture,
) -> None:
    lanes = session(2)
    _, link = serve(turn(lanes, body(USER)))
    other = turn(lanes, body(OTHER))
    busy, _ = start(other)
    placed = lanes.place(body(*history(1), USER), warmup=False, full=False)
    assert isinstance(placed, Placement) and placed.socket is busy.socket
    lanes.cancel(placed)
    with caplog.at_level(logging.DEBUG, logger="llmkit"):
        lanes.retire(placed, "old")
    assert said(caplog) == ["retiring WebSocket connection 0: old"]
    assert not link.closed
    elsewhere, _ = start(turn(lanes, body(*history(1), USER)))
    assert elsewhere.connect and elsewhere.mode == "full", "a retiring socket takes nothing"
    finish(other, busy, link)
    assert link.closes == 1 and busy.socket not in lanes.pool.sockets


def test_closing_refuses_later_and_waiting_calls_and_closes_every_connection() -> None:
    lanes = session(2, lanes=False)
    idle, idle_link = serve(turn(lanes, body(USER)))
    late_step = turn(lanes, body(OTHER))
    busy, busy_link = start(late_step)
    _, _ = start(turn(lanes, body(*history(1), USER)))  # the idle socket is busy again
    waiter, woken = waiting(lanes, body(OTHER, OTHER))
    lanes.close()
    assert idle_link.closes == 1 and busy_link.closes == 1
    assert lanes.connections() == [] and lanes.pool.sockets == []
    assert woken == ["woken"] and lanes.withdraw(waiter) is None
    with pytest.raises(llmkit.UsageError):
        lanes.refuse_if_closed()  # what the woken call raises
    with pytest.raises(llmkit.UsageError):
        lanes.place(body(USER), warmup=False, full=False)
    assert not lanes.arm(waiter, lambda: None)
    finish(late_step, busy, busy_link)  # a response that ended after the close
    assert lanes.connections() == [] and busy_link.closes == 1
    assert idle.lane.chain is None


def test_a_connection_opened_during_the_close_is_closed_and_refused() -> None:
    lanes = session(1)
    placed = lanes.place(body(USER), warmup=False, full=False)
    assert isinstance(placed, Placement) and placed.connect
    lanes.close()
    late = Link(lock=lanes._lock)
    with pytest.raises(llmkit.UsageError):
        lanes.connected(placed, late)
    assert late.closes == 1 and placed.socket.connection is None
    assert lanes.connections() == []


@pytest.mark.parametrize(
    ("lanes_on", "reason"),
    [
        (True, "waiting for the first answer on a new WebSocket connection"),
        (False, "all 1 WebSocket connections are at their limits"),
    ],
)
def test_the_busy_error_names_the_pool_size_the_wait_and_why(lanes_on: bool, reason: str) -> None:
    lanes = session(1, lanes=lanes_on, wait_timeout=0.25)
    start(turn(lanes))
    waiter, _ = waiting(lanes, body(OTHER))
    error = lanes.busy_error(waiter)
    assert isinstance(error, llmkit.Timeout)
    assert error.message == f"all 1 WebSocket connections stayed busy for 0.25 seconds ({reason})"


# --------------------------------------------------------------------------- an attempt


def test_an_attempt_starts_in_the_send_stage_and_sent_moves_it_to_receive() -> None:
    step = turn(session())
    placement, link = start(step)
    with step.attempt(placement, link) as sending:
        assert (sending.stage, sending.payloads) == ("send", None)
        frames = Frames()
        assert sending.sent(frames) is frames
        assert (sending.stage, sending.payloads) == ("receive", frames)
        sending.protocol.receive(ev.completed())


@pytest.mark.parametrize(
    "error", [llmkit.ConnectionClosed("gone"), llmkit.BadRequestError("bad", status_code=400)]
)
def test_a_failure_before_the_frame_went_out_counts_no_event(error: llmkit.LLMKitError) -> None:
    step = turn(session())
    placement, link = start(step)
    with step.attempt(placement, link) as attempt:
        assert attempt.failure(error) == Failure("send", error, events=0)
        attempt.protocol.receive(ev.completed())


def test_a_transport_error_comes_after_every_frame_received() -> None:
    error = llmkit.ConnectionClosed("gone", code=1006)
    step = turn(session())
    placement, link = start(step)
    with step.attempt(placement, link) as attempt:
        attempt.sent(Frames(received=3))
        assert attempt.failure(error) == Failure("receive", error, events=3)
        attempt.protocol.receive(ev.completed())


@pytest.mark.parametrize("received", [1, 3])
def test_an_error_event_is_itself_the_last_frame_received(received: int) -> None:
    error = llmkit.BadRequestError("bad", status_code=400, code="previous_response_not_found")
    step = turn(session())
    placement, link = start(step)
    with step.attempt(placement, link) as attempt:
        attempt.sent(Frames(received=received))
        assert attempt.failure(error) == Failure("receive", error, events=received - 1)
        attempt.protocol.receive(ev.completed())


@pytest.mark.parametrize("warmup", [False, True])
@pytest.mark.parametrize("lanes_on", [True, False], ids=["lanes", "one-at-a-time"])
def test_an_attempt_sends_the_placements_plan(warmup: bool, lanes_on: bool) -> None:
    lanes = session(lanes=lanes_on)
    serve(turn(lanes))
    step = turn(lanes, body(*history(1), USER), warmup=warmup)
    placement, link = start(step)
    with step.attempt(placement, link) as attempt:
        frame: dict[str, Any] = {"type": "response.create", "model": "m", "input": [USER]}
        if warmup:
            frame["generate"] = False
        frame["previous_response_id"] = "resp_1"
        assert attempt.plan is placement.plan and attempt.plan.frame == frame
        if lanes_on:
            frame["stream_id"] = "lane-1"
        assert json.loads(attempt.text) == frame == placement.frame
        meter = attempt.meter
        assert (meter.transport, meter.input_mode, meter.input_items_sent) == (
            "websocket",
            "incremental",
            1,
        )
        assert meter.connection_reused
        attempt.protocol.receive(ev.completed("resp_2", usage=ev.usage(5)))


class Compared(dict[str, Any]):
    """An input item that counts how often it was compared."""

    count = 0

    def __eq__(self, other: object) -> bool:
        Compared.count += 1
        return dict.__eq__(self, other)

    __hash__ = dict.__hash__


def test_the_suffix_found_by_the_placement_is_the_one_sent() -> None:
    # Matching a request to a chain compares the whole history: once per turn, not twice.
    lanes = session()
    serve(turn(lanes, body(USER, ANSWER, USER)))
    context = history(2)
    payload = body(*(Compared(item) for item in context), USER)
    Compared.count = 0
    step = turn(lanes, payload)
    placement, link = start(step)
    assert Compared.count == len(context)
    with step.attempt(placement, link) as attempt:
        assert Compared.count == len(context)
        assert attempt.plan.frame["input"] == [USER]
        assert attempt.plan.frame["previous_response_id"] == "resp_1"
        attempt.protocol.receive(ev.completed("resp_2"))


# --------------------------------------------------------------------------- a turn


def test_a_new_turn_has_one_resend_and_no_failure() -> None:
    step = turn(session(), warmup=True)
    assert (step.warmup, step.failure, step.over) == (True, None, False)
    attempt_fails(step, *start(step), not_found(), received=1)  # resent: the server never ran it
    assert not step.over
    with pytest.raises(llmkit.BadRequestError):
        attempt_fails(step, *start(step), not_found(), received=1)  # the resend is used up
    assert (step.failure, step.over) == (None, False)


@pytest.mark.parametrize(
    ("lanes_on", "reset"),
    [
        (True, "chain reset on lane lane-1 of WebSocket connection 0: gone"),
        (False, "chain reset on WebSocket connection 0: gone"),
    ],
    ids=["lanes", "one-at-a-time"],
)
def test_a_missing_chain_head_keeps_the_connection_and_resends_the_full_input_on_it(
    lanes_on: bool, reset: str, caplog: pytest.LogCaptureFixture
) -> None:
    # previous_response_not_found is about the request, not the socket (PROTOCOL.md §3.1)
    lanes = session(lanes=lanes_on)
    serve(turn(lanes))
    step = turn(lanes, body(*history(1), USER))
    placement, link = start(step)
    assert placement.mode == "incremental"
    with caplog.at_level(logging.DEBUG, logger="llmkit"):
        attempt_fails(step, placement, link, not_found(), received=1)
    assert said(caplog) == [reset, "resending with full input (a new lane) after: gone"]
    assert not step.over and not link.closed
    assert (placement.lane.chain, placement.lane.head_id) == (None, None)
    again, connection = start(step)
    assert connection is link and again.socket is placement.socket
    with step.attempt(again, connection) as attempt:
        assert attempt.plan.mode == "full"
        assert attempt.plan.frame["input"] == [*history(1), USER]
        assert "previous_response_id" not in attempt.plan.frame
        assert attempt.meter.connection_reused
        attempt.protocol.receive(ev.completed("resp_2"))


@pytest.mark.parametrize(
    "error",
    [
        not_found(),
        llmkit.BadRequestError("limit", status_code=400, code="websocket_connection_limit_reached"),
    ],
    ids=["missing-head", "connection-limit"],
)
def test_the_resend_chains_on_nothing_not_on_another_lanes_copy_of_the_chain(
    error: llmkit.LLMKitError,
) -> None:
    lanes = session(2, lanes=False)
    mine, _ = serve(turn(lanes, body(USER)))
    copy, _ = serve(turn(lanes, body(OTHER)))
    copy.lane.chain, copy.lane.head_id = chain(history(1), "resp_9"), "resp_9"
    step = turn(lanes, body(*history(1), USER))
    placement, link = start(step)
    assert placement.lane is mine.lane and placement.previous_response_id == "resp_1"
    attempt_fails(step, placement, link, error, received=1)
    again, _ = start(step)
    assert again.mode == "full" and again.previous_response_id is None


@pytest.mark.parametrize(
    ("error", "resent"),
    [
        (
            llmkit.BadRequestError(
                "limit", status_code=400, code="websocket_connection_limit_reached"
            ),
            True,
        ),
        (llmkit.ConnectionClosed("idle", code=1001), False),
        (llmkit.ConnectionClosed("gone", code=1006), False),
        (llmkit.BadRequestError("bad", status_code=400, code="invalid_value"), False),
        (llmkit.ResponseFailed("failed", code="server_error"), False),
    ],
)
@pytest.mark.parametrize("server", ["one-at-a-time", "ignore"])
def test_every_other_failure_on_a_socket_running_one_response_at_a_time_closes_it(
    error: llmkit.LLMKitError, resent: bool, server: str, caplog: pytest.LogCaptureFixture
) -> None:
    lanes = session(lanes=server != "one-at-a-time")
    first, _ = serve(turn(lanes), server="ignore")
    assert first.socket.capability == ("off" if server == "one-at-a-time" else "ignored")
    step = turn(lanes, body(*history(1), USER))
    placement, link = start(step)
    with (
        caplog.at_level(logging.DEBUG, logger="llmkit"),
        contextlib.suppress(llmkit.LLMKitError),
    ):
        attempt_fails(step, placement, link, error, received=1)
    assert link.closes == 1 and lanes.connections() == []
    assert (placement.lane.chain, placement.lane.head_id) == (None, None)
    closing = [m for m in said(caplog) if m.startswith("closing")]
    # The connection limit retires the socket (closed at once: nothing else is on it).
    reason = "retired and idle" if resent else "the response did not complete on this connection"
    assert closing == [f"closing WebSocket connection 0: {reason}"]
    resends = [m for m in said(caplog) if m.startswith("resending")]
    assert resends == (
        [f"resending with full input (reconnecting) after: {error.message}"] * resent
    )


@pytest.mark.parametrize(
    ("error", "received"),
    [
        (llmkit.BadRequestError("bad", status_code=400, code="invalid_value"), 1),
        (llmkit.ResponseFailed("failed", code="server_error"), 5),
        (llmkit.BadRequestError("no", status_code=400, code="x", param="stream_id"), 1),
    ],
    ids=["before-output", "after-output", "stream-id-after-the-probe"],
)
def test_an_error_of_one_lane_keeps_the_socket_and_drops_only_that_lanes_chain(
    error: llmkit.LLMKitError, received: int, caplog: pytest.LogCaptureFixture
) -> None:
    lanes = session()
    mine, link = serve(turn(lanes, body(USER)))
    theirs, _ = serve(turn(lanes, body(OTHER)))
    step = turn(lanes, body(*history(1), USER))
    placement, _ = start(step)
    assert placement.lane is mine.lane and theirs.lane is not mine.lane
    with caplog.at_level(logging.DEBUG, logger="llmkit"), pytest.raises(type(error)):
        attempt_fails(step, placement, link, error, received=received)
    assert not link.closed and lanes.connections() == [link]
    assert (mine.lane.chain, mine.lane.current) == (None, None)
    assert theirs.lane.chain is not None and theirs.lane.head_id == "resp_1"
    assert said(caplog) == [
        f"chain reset on lane lane-1 of WebSocket connection 0: {error.message}"
    ]


def test_a_lane_told_the_connection_limit_retires_its_socket_and_resends_on_another(
    caplog: pytest.LogCaptureFixture,
) -> None:
    lanes = session(2)
    mine, link = serve(turn(lanes, body(USER)))
    other = turn(lanes, body(OTHER))
    busy, _ = start(other)
    step = turn(lanes, body(*history(1), USER))
    limit = llmkit.BadRequestError(
        "limit", status_code=400, code="websocket_connection_limit_reached"
    )
    with caplog.at_level(logging.DEBUG, logger="llmkit"):
        attempt_fails(step, *start(step), limit, received=1)
    assert "retiring WebSocket connection 0: limit" in said(caplog)
    assert not step.over and not link.closed
    again, fresh = start(step)
    assert again.connect and fresh is not link and again.mode == "full"
    finish(other, busy, link)
    assert link.closes == 1 and lanes.connections() == [fresh]
    assert mine.lane.chain is None


@pytest.mark.parametrize("extra", [0.0, 0.5])
def test_a_connection_up_to_max_age_is_reused(extra: float) -> None:
    lanes = session()
    _, link = serve(turn(lanes))
    link.age = 1.0 - extra
    step = turn(lanes, body(*history(1), USER), max_age=1.0)
    placement = step.place()
    assert isinstance(placement, Placement)
    assert step.reusable(placement) is link
    assert not link.closed and lanes.connections() == [link]


def test_a_connection_past_max_age_is_closed_and_says_why(
    caplog: pytest.LogCaptureFixture,
) -> None:
    lanes = session()
    served, link = serve(turn(lanes))
    link.age = 1.5
    step = turn(lanes, body(*history(1), USER), max_age=1.0)
    placement = step.place()
    assert isinstance(placement, Placement)
    with caplog.at_level(logging.DEBUG, logger="llmkit"):
        assert step.reusable(placement) is None
    assert link.closes == 1 and lanes.connections() == []
    assert (served.lane.chain, served.lane.head_id) == (None, None)
    assert "retiring WebSocket connection 0: connection older than 1.0 seconds" in said(caplog)
    assert "closing WebSocket connection 0: retired and idle" in said(caplog)
    again = step.place()
    assert isinstance(again, Placement) and again.connect and again.mode == "full"


def test_a_busy_connection_past_max_age_is_retired_and_closed_once_idle(
    caplog: pytest.LogCaptureFixture,
) -> None:
    lanes = session(2)
    _, link = serve(turn(lanes))
    other = turn(lanes, body(OTHER))
    busy, _ = start(other)
    link.age = 1.5
    step = turn(lanes, body(*history(1), USER), max_age=1.0)
    placement = step.place()
    assert isinstance(placement, Placement) and placement.socket is busy.socket
    with caplog.at_level(logging.DEBUG, logger="llmkit"):
        assert step.reusable(placement) is None
    assert said(caplog) == ["retiring WebSocket connection 0: connection older than 1.0 seconds"]
    assert not link.closed
    again = step.place()
    assert isinstance(again, Placement) and again.connect
    finish(other, busy, link)
    assert link.closes == 1


def test_a_probe_that_found_the_connection_closed_drops_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    lanes = session(2, lanes=False)
    serve(turn(lanes, body(USER)))
    serve(turn(lanes, body(OTHER)))
    kept_turn, dropped_turn = (
        turn(lanes, body(*history(1), USER)),
        turn(lanes, body(OTHER, ANSWER, USER)),
    )
    (kept, alive), (dropped, dead) = start(kept_turn), start(dropped_turn)
    assert kept_turn.must_probe(kept) and dropped_turn.must_probe(dropped)
    with caplog.at_level(logging.DEBUG, logger="llmkit"):
        assert kept_turn.alive(kept, True) and not dropped_turn.alive(dropped, False)
    assert not alive.closed and lanes.connections() == [alive]
    assert dead.closes == 1 and dropped.lane.chain is None
    reason = "connection found closed before sending"
    assert said(caplog) == [
        f"closing WebSocket connection 1: {reason}",
        f"chain reset on WebSocket connection 1: {reason}",
    ]


def test_only_a_socket_idle_but_for_the_placement_is_probed() -> None:
    lanes = session()
    serve(turn(lanes, body(USER)))
    first, second = turn(lanes, body(*history(1), USER)), turn(lanes, body(OTHER))
    a, _ = start(first)
    assert first.must_probe(a)
    b, _ = start(second)
    assert b.socket is a.socket and not second.must_probe(b), "its reader reads the socket"


def test_a_refused_connect_sends_the_turn_over_http_and_starts_the_cool_down() -> None:
    gate = CooldownGate(Cooldown(initial=30.0))
    lanes = session()
    step = turn(lanes, gate=gate)
    placement = step.place()
    assert isinstance(placement, Placement)
    error = llmkit.ConnectError("connection refused")
    assert step.connect_failed(placement, error)
    assert (step.failure, step.over) == (Failure("connect", error), True)
    assert gate.active()
    assert gate.reason == f"{COOLING_DOWN} (ConnectError: connection refused)"
    assert step.fallback_reason() == (
        "could not connect over WebSocket: ConnectError: connection refused"
    )
    assert lanes.pool.sockets == [], "the socket that never opened is forgotten"


@pytest.mark.parametrize(
    "error",
    [
        llmkit.AuthenticationError("no", status_code=401),
        llmkit.RateLimitError("slow down", status_code=429),
    ],
)
def test_an_upgrade_refused_for_the_key_or_the_rate_is_raised_and_starts_no_cool_down(
    error: llmkit.APIStatusError,
) -> None:
    gate = CooldownGate(Cooldown(initial=30.0))
    lanes = session()
    step = turn(lanes, gate=gate)
    placement = step.place()
    assert isinstance(placement, Placement)
    assert not step.connect_failed(placement, error)
    assert (step.failure, step.over) == (None, False)
    assert not gate.active() and gate.reason == COOLING_DOWN
    assert lanes.pool.sockets == []


def test_a_connect_cut_short_by_the_deadline_raises_it_and_starts_no_cool_down() -> None:
    gate = CooldownGate(Cooldown(initial=30.0))
    step = turn(session(), gate=gate)
    placement = step.place()
    assert isinstance(placement, Placement)
    with pytest.raises(llmkit.Timeout, match="max_duration"):
        step.connect_failed(placement, llmkit.Timeout("connect"), Deadline(0.0))
    assert not gate.active() and step.failure is None


def test_a_new_connection_resets_the_cool_down_and_is_kept(
    caplog: pytest.LogCaptureFixture,
) -> None:
    gate = CooldownGate(Cooldown(initial=30.0))
    gate.failed("earlier")
    lanes = session()
    with caplog.at_level(logging.DEBUG, logger="llmkit"):
        placement, link = serve(turn(lanes, gate=gate))
    assert not gate.active()
    assert lanes.connections() == [link] and placement.lane.head_id == "resp_1"
    assert said(caplog) == ["opened WebSocket connection 0"]


@pytest.mark.parametrize(
    "error", [llmkit.ConnectionClosed("gone", code=1006), asyncio.CancelledError()]
)
def test_a_response_that_did_not_complete_on_a_socket_without_lanes_drops_it(
    error: BaseException, caplog: pytest.LogCaptureFixture
) -> None:
    lanes = session(lanes=False)
    serve(turn(lanes))
    step = turn(lanes, body(*history(1), USER))
    placement, link = start(step)
    with (
        caplog.at_level(logging.DEBUG, logger="llmkit"),
        pytest.raises(type(error)),
    ):
        attempt_fails(step, placement, link, error, received=2)
    assert link.closes == 1 and lanes.connections() == []
    assert (placement.lane.chain, placement.lane.head_id) == (None, None)
    assert not step.over
    reason = "the response did not complete on this connection"
    assert said(caplog) == [
        f"closing WebSocket connection 0: {reason}",
        f"chain reset on WebSocket connection 0: {reason}",
    ]


def test_a_message_too_big_falls_back_to_http() -> None:
    lanes = session()
    step = turn(lanes)
    error = llmkit.ConnectionClosed("too big", code=1009)
    placement, link = start(step)
    attempt_fails(step, placement, link, error, received=0)
    assert (step.failure, step.over) == (Failure("receive", error, events=0), True)
    assert step.fallback_reason() == (
        "the server closed the WebSocket with 1009 (request frame too big)"
    )
    assert link.closed


@pytest.mark.parametrize(("store", "kept"), [(None, False), (False, False), (True, True)])
def test_the_chain_holds_what_the_server_keeps_for_the_store_setting(
    store: bool | None, kept: bool
) -> None:
    # With store=false the server cannot resolve reasoning without its encrypted state:
    # the encoder leaves it out of a later full input, so the chain must too.
    payload = body(USER) if store is None else body(USER, store=store)
    events = [
        ev.created(),
        *ev.reasoning_events("rs_1", [["t"]]),
        *ev.message_events("msg_1", ["ok"], output_index=1),
        ev.completed(),
    ]
    placement, _ = serve(turn(session(), payload), events)
    assert placement.lane.head_id == "resp_1" and placement.lane.chain is not None
    assert placement.lane.chain.context == ((USER, REASONING, ANSWER) if kept else (USER, ANSWER))


# --------------------------------------------------------------------------- lanes


def test_a_refused_stream_id_is_resent_on_the_same_socket_without_a_lane_at_no_cost(
    caplog: pytest.LogCaptureFixture,
) -> None:
    lanes = session()
    step = turn(lanes)
    placement, link = start(step)
    assert placement.stream_id == "lane-1" and placement.socket.capability == "unknown"
    refused = llmkit.BadRequestError(
        "Unsupported parameter: stream_id",
        status_code=400,
        code="unsupported_parameter",
        param="stream_id",
    )
    with caplog.at_level(logging.DEBUG, logger="llmkit"):
        attempt_fails(step, placement, link, refused, received=1)
    assert said(caplog) == ["resending without a lane: Unsupported parameter: stream_id"]
    assert not step.over and not link.closed
    again, connection = start(step)
    assert again is placement and connection is link and not again.connect
    assert again.stream_id is None and "stream_id" not in again.frame
    assert again.socket.capability == "refused" and again.mode == "full"
    with step.attempt(again, connection) as attempt:
        assert attempt.meter.connection_reused and attempt.meter.stream_id is None
        assert attempt.end is not None and attempt.end.answered is None, "no probe now"
        attempt.sent(Frames(received=0))
        fail(llmkit.ConnectionClosed("restart", code=1012))  # its one resend still left
    assert not step.over and link.closes == 1
    assert lanes.connections() == []


def test_a_refused_stream_id_answers_the_probe_and_the_waiters_go_on() -> None:
    # The refusal settles the socket (one at a time) as an answer without one does: the
    # calls waiting for that answer may open sockets of their own now, not only once the
    # resent response has ended.
    lanes = session(2)
    step = turn(lanes)
    placement, link = start(step)
    waiter, woken = waiting(lanes, body(OTHER))
    refused = llmkit.BadRequestError("no", status_code=400, param="stream_id")
    attempt_fails(step, placement, link, refused, received=1)
    assert woken == ["woken"]
    handed = lanes.withdraw(waiter)
    assert handed is not None and handed.connect and handed.socket is not placement.socket
    assert placement.lane.current is placement, "the resend keeps its socket"


def test_a_stream_id_error_after_output_on_a_probe_is_no_refusal() -> None:
    lanes = session()
    step = turn(lanes)
    placement, link = start(step)
    error = llmkit.BadRequestError("bad", status_code=400, code="x", param="stream_id")
    with pytest.raises(llmkit.BadRequestError):
        attempt_fails(step, placement, link, error, received=2)
    assert placement.socket.capability == "unknown" and link.closed  # one at a time so far


def test_a_lane_limit_moves_the_request_to_another_socket(
    caplog: pytest.LogCaptureFixture,
) -> None:
    lanes = session(2)
    serve(turn(lanes, body(USER)))
    step = turn(lanes, body(OTHER))
    placement, link = start(step)
    assert placement.stream_id == "lane-2"
    limit = llmkit.BadRequestError(
        "too many lanes", status_code=400, code="websocket_stream_limit_reached", param="stream_id"
    )
    with caplog.at_level(logging.DEBUG, logger="llmkit"):
        attempt_fails(step, placement, link, limit, received=1)
    assert said(caplog) == ["moving the request to another connection: too many lanes"]
    assert not step.over and not link.closed and placement.socket.named_limit == 1
    moved, fresh = start(step)
    assert moved.connect and moved.socket is not placement.socket and fresh is not link
    attempt_fails(step, moved, fresh, llmkit.ConnectionClosed("restart", code=1012), received=0)
    assert not step.over, "moving cost no resend"


@pytest.mark.parametrize("lanes_on", [True, False], ids=["lanes", "one-at-a-time"])
def test_a_timeout_on_a_socket_with_lanes_drains_the_lane_instead_of_closing_it(
    lanes_on: bool,
) -> None:
    lanes = session(lanes=lanes_on)
    served, link = serve(turn(lanes))
    step = turn(lanes, body(*history(1), USER))
    placement, _ = start(step)
    with pytest.raises(llmkit.Timeout), step.attempt(placement, link) as attempt:
        attempt.sent(Frames(received=1))
        fail(llmkit.Timeout("slow"))
    assert not step.over and served.lane.chain is None
    if not lanes_on:
        assert link.closes == 1 and lanes.connections() == []
        return
    assert not link.closed and lanes.connections() == [link]
    assert placement.socket.in_flight == 1 and placement.abandoned, "draining"
    other, _ = start(turn(lanes, body(*history(1), USER)))
    assert other.lane is not placement.lane and other.mode == "full"
    assert attempt.end is not None
    attempt.end.drained()  # the reader saw the response's last frame
    assert placement.lane.current is None


@pytest.mark.parametrize("error", [asyncio.CancelledError(), GeneratorExit(), KeyboardInterrupt()])
def test_an_abandoned_stream_drains_its_lane_and_the_others_go_on(error: BaseException) -> None:
    lanes = session()
    mine, link = serve(turn(lanes, body(USER)))
    theirs, _ = serve(turn(lanes, body(OTHER)))
    step = turn(lanes, body(*history(1), USER))
    placement, _ = start(step)
    with pytest.raises(type(error)), step.attempt(placement, link) as attempt:
        attempt.sent(Frames(received=3))
        fail(error)
    assert not link.closed and mine.lane.chain is None and theirs.lane.chain is not None
    assert mine.lane.current is placement and placement.abandoned
    waiter_body = body(*history(1), USER)
    lanes.pool.max_in_flight = 1  # the socket full while the lane drains
    waiter, woken = waiting(lanes, waiter_body)
    assert attempt.end is not None
    attempt.end.drained()
    assert woken == ["woken"] and mine.lane.current is not placement
    assert lanes.withdraw(waiter) is not None


def test_an_abandoned_stream_on_a_socket_that_failed_or_before_the_send_closes_it() -> None:
    lanes = session()
    serve(turn(lanes, body(USER)))
    step = turn(lanes, body(*history(1), USER))
    placement, link = start(step)
    with pytest.raises(asyncio.CancelledError), step.attempt(placement, link):
        fail(asyncio.CancelledError())  # before the frame went out: nothing to drain
    assert link.closes == 1 and lanes.connections() == []
    lanes = session()
    serve(turn(lanes, body(USER)))
    step = turn(lanes, body(*history(1), USER))
    placement, link = start(step)
    with pytest.raises(asyncio.CancelledError), step.attempt(placement, link) as attempt:
        attempt.sent(Frames(received=1))
        link.lost = True
        fail(asyncio.CancelledError())
    assert link.closes == 1 and lanes.connections() == []


def test_an_error_on_a_lanes_socket_that_failed_closes_it() -> None:
    # a socket-level error: the reader failed every lane and the socket is gone
    lanes = session()
    serve(turn(lanes, body(USER)))
    step = turn(lanes, body(*history(1), USER))
    placement, link = start(step)
    link.lost = True
    with pytest.raises(llmkit.BadRequestError):
        attempt_fails(step, placement, link, llmkit.BadRequestError("x", status_code=400), 1)
    assert link.closes == 1 and lanes.connections() == []


# --------------------------------------------------------------------------- a lane's end


def test_only_a_probe_is_told_its_first_event() -> None:
    lanes = session()
    step = turn(lanes)
    placement, link = start(step)
    with step.attempt(placement, link) as attempt:
        assert attempt.end is not None and attempt.end.answered is not None
        attempt.end.answered(first_event("lane-1"))
        attempt.protocol.receive(ev.completed())
    for lanes_on in (True, False):
        other = session(lanes=lanes_on)
        serve(turn(other))
        step = turn(other, body(*history(1), USER))
        placement, link = start(step)
        with step.attempt(placement, link) as attempt:
            assert attempt.end is not None and attempt.end.answered is None
            attempt.protocol.receive(ev.completed("resp_2"))


@pytest.mark.parametrize(
    ("echo", "capability", "stream_id"),
    [("lane-1", "lanes", "lane-1"), (None, "ignored", None)],
    ids=["echoed", "ignored"],
)
def test_a_probes_first_event_settles_the_socket_and_places_the_waiters(
    echo: str | None, capability: str, stream_id: str | None
) -> None:
    lanes = session(2)
    step = turn(lanes)
    placement, link = start(step)
    waiter, woken = waiting(lanes, body(OTHER))
    assert waiter.reason == "waiting for the first answer on a new WebSocket connection"
    with step.attempt(placement, link) as attempt:
        attempt.sent(Frames(received=1))
        assert attempt.end is not None and attempt.end.answered is not None
        attempt.end.answered(ev.error_nested("x", "bad"))  # an error settles nothing
        assert placement.socket.capability == "unknown" and woken == []
        attempt.end.answered(first_event(echo))
        assert placement.socket.capability == capability
        assert placement.stream_id == attempt.meter.stream_id == stream_id
        assert woken == ["woken"]
        assert not attempt.end.ended()
        for event in reply():
            attempt.protocol.receive(event)
        assert attempt.end.ended()
    handed = lanes.withdraw(waiter)
    assert handed is not None
    assert handed.connect is (echo is None)  # else a lane of the same socket
    assert not link.closed


def test_a_lanes_end_is_its_terminal_event() -> None:
    step = turn(session())
    placement, link = start(step)
    with step.attempt(placement, link) as attempt:
        assert attempt.end is not None
        is_end = attempt.end.is_end
        attempt.protocol.receive(ev.completed())
    assert not is_end(ev.created()) and not is_end(ev.text_delta("m", "x"))
    assert is_end(ev.completed()) and is_end(ev.error_flat("x", "y"))
    assert is_end(ev.failed("x", "y")) and is_end(ev.incomplete("max_output_tokens"))


@pytest.mark.parametrize("lanes_on", [True, False], ids=["lanes", "one-at-a-time"])
def test_the_metadata_names_the_lane_and_the_response_chained_on(lanes_on: bool) -> None:
    lanes = session(lanes=lanes_on)
    step = turn(lanes)
    first, link = start(step)
    with step.attempt(first, link) as attempt:
        assert attempt.end is not None
        if attempt.end.answered is not None:
            attempt.end.answered(first_event(first.stream_id))
        assert (attempt.meter.stream_id, attempt.meter.previous_response_id) == (
            "lane-1" if lanes_on else None,
            None,
        )
        attempt.protocol.receive(ev.completed())
    step = turn(lanes, body(*history(1), USER))
    placement, _ = start(step)
    with step.attempt(placement, link) as attempt:
        metadata = attempt.meter.apply(llmkit.ResponseMetadata())
        assert (metadata.stream_id, metadata.previous_response_id) == (
            "lane-1" if lanes_on else None,
            "resp_1",
        )
        attempt.protocol.receive(ev.completed("resp_2"))


def test_a_fork_names_its_own_lane_and_the_parent_it_chained_on() -> None:
    lanes = session()
    serve(turn(lanes))
    start(turn(lanes, body(*history(1), USER)))  # the parent's lane is busy
    step = turn(lanes, body(*history(1), OTHER))
    fork, link = start(step)
    assert fork.kind == "fork" and fork.frame["input"] == [OTHER]
    with step.attempt(fork, link) as attempt:
        metadata = attempt.meter.apply(llmkit.ResponseMetadata())
        assert (metadata.stream_id, metadata.previous_response_id) == ("lane-2", "resp_1")
        attempt.protocol.receive(ev.completed("resp_3"))


# --------------------------------------------------------------------------- warm-up


def done(response_id: str, tokens: int) -> Finish:
    return Finish(
        llmkit.FinishReason.STOP,
        llmkit.Usage(input_tokens=tokens, total_tokens=tokens),
        llmkit.ResponseMetadata(response_id=response_id),
    )


def test_a_warmup_result_reports_the_last_finish() -> None:
    finishes = [done("r1", 1), done("r2", 2), done("r3", 3)]
    result = turn(session(), warmup=True).warmup_result(finishes)
    assert result == llmkit.WarmupResult(
        response_id="r3",
        usage=llmkit.Usage(input_tokens=3, total_tokens=3),
        transport="websocket",
    )


def test_a_warmup_that_failed_or_finished_nothing_is_skipped() -> None:
    step = turn(session(), warmup=True)
    assert step.warmup_result([]) == llmkit.WarmupResult.skipped()
    placement = step.place()
    assert isinstance(placement, Placement)
    step.connect_failed(placement, llmkit.ConnectError("refused"))
    assert step.warmup_result([done("r1", 1)]) == llmkit.WarmupResult.skipped()


@pytest.mark.parametrize("tokens", [0, 7])
def test_a_warmup_keeps_a_chain_only_when_it_prepared_something(
    tokens: int, caplog: pytest.LogCaptureFixture
) -> None:
    gate = CooldownGate(Cooldown())
    lanes = session()
    step = turn(lanes, warmup=True, gate=gate)
    with caplog.at_level(logging.DEBUG, logger="llmkit"):
        placement, link = serve(step, [ev.completed("warm", usage=ev.usage(tokens))])
    prepared = tokens > 0
    assert step.prepared is prepared and step.warmup_result([done("warm", tokens)]).prepared is (
        prepared
    )
    assert (placement.lane.head_id is not None) is prepared and not link.closed
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warned == ([] if prepared else [UNPREPARED_WARMUP])


# --------------------------------------------------------------------------- threads


def test_a_waiter_on_another_thread_is_woken_by_the_freed_lane() -> None:
    # The shells wait on their own event (`threading.Event` here) armed with `Lanes.arm`.
    lanes = session(1, lanes=False, wait_timeout=10.0)
    step = turn(lanes)
    busy, link = start(step)
    waiter = lanes.place(body(OTHER), warmup=False, full=False)
    assert isinstance(waiter, Waiter)
    placed = threading.Event()
    got: list[Placement[Link] | None] = []

    def wait() -> None:
        if lanes.arm(waiter, placed.set):
            placed.wait(10.0)
        got.append(lanes.withdraw(waiter))

    thread = threading.Thread(target=wait)
    thread.start()
    finish(step, busy, link)
    thread.join(10.0)
    assert not thread.is_alive()
    assert len(got) == 1 and got[0] is not None and got[0].socket is busy.socket
